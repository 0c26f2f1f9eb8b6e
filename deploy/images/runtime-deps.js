// Run in the image build (deploy/images/Dockerfile) before `npm prune --omit=dev`: the root
// package.json lists as devDependencies a few packages the sample apps load at runtime; they are
// moved to dependencies in the build's copy of package.json so the prune keeps them (with what
// they depend on). The repository's package.json is never touched (the build works on a copy).
'use strict';
const fs = require('node:fs');

/** Dev dependencies the images need at runtime, and why. */
const RUNTIME = {
  // apps/shared/tracing.ts: the OpenTelemetry SDK preload (NODE_OPTIONS=--require
  // /app/dist/apps/shared/tracing.js with OTEL_EXPORTER_OTLP_ENDPOINT set).
  '@opentelemetry/sdk-node': 'tracing preload',
  '@opentelemetry/exporter-trace-otlp-http': 'tracing preload',
  // Event contracts (apps/shared/contracts): Sage validates payloads with JSON Schema.
  ajv: 'event contracts',
  'ajv-formats': 'event contracts',
  // DTO validation (apps/shared/sample-validation.ts); also listed so a future lockfile that
  // marks them dev-only does not drop them.
  'class-validator': 'request validation',
  'class-transformer': 'request validation',
};

const file = process.argv[2] ?? 'package.json';
const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
pkg.dependencies ??= {};
for (const name of Object.keys(RUNTIME)) {
  const range = pkg.devDependencies?.[name] ?? pkg.dependencies[name];
  if (!range) {
    console.error(
      `runtime-deps: ${name} is in neither dependencies nor devDependencies of ${file}`,
    );
    process.exit(1);
  }
  pkg.dependencies[name] = range;
  if (pkg.devDependencies) delete pkg.devDependencies[name];
}
fs.writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`);
console.log(`runtime-deps: kept for runtime: ${Object.keys(RUNTIME).join(', ')}`);
