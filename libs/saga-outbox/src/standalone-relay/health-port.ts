import { InvalidOptionsError } from '../core/errors';

/**
 * Port of the relay's HTTP server (/health/live, /health/ready, /metrics): HEALTH_PORT, else PORT;
 * `0` picks a free port. Neither set: undefined, no HTTP server (replicas started side by side on
 * one host never fight over a default port). InvalidOptionsError naming the variable on anything
 * but an integer port.
 */
export function readHealthPort(env: NodeJS.ProcessEnv): number | undefined {
  const name = env.HEALTH_PORT?.trim() ? 'HEALTH_PORT' : 'PORT';
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65535)
    throw new InvalidOptionsError(name, `must be a port number (0-65535), got "${raw}"`);
  return port;
}
