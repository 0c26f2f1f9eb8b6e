// The images' HEALTHCHECK: GET http://127.0.0.1:<port>/health/live, exit 0 on a 2xx answer within
// 2 s, else 1. Port: HEALTH_PORT (the relay), else PORT (the services). No shell or curl needed.
'use strict';
const port = process.env.HEALTH_PORT?.trim() || process.env.PORT?.trim();
if (!port) {
  console.error('healthcheck: set HEALTH_PORT (relay) or PORT (services)');
  process.exit(1);
}
fetch(`http://127.0.0.1:${port}/health/live`, { signal: AbortSignal.timeout(2000) }).then(
  (res) => process.exit(res.ok ? 0 : 1),
  (error) => {
    console.error(`healthcheck: ${error.message}`);
    process.exit(1);
  },
);
