import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { InvalidOptionsError } from '../../core/errors';
import type { Broker } from '../../core/ports/broker';

/** Schemes the adapters of issue 4 will serve; named in the error so operators know it is coming. */
const PLANNED_SCHEMES = ['kafka', 'amqp', 'amqps', 'nats'];

/**
 * A Broker from a URL, for deployments configured by environment (`SAGE_BROKER_URL`).
 *
 * Supported today: `memory://` (in-process; messages are only visible inside this process — for
 * tests and demos), with the optional query `?latencyMs=N` (a simulated round trip).
 * Any other scheme → InvalidOptionsError, before anything is opened.
 */
export function brokerFromUrl(url: string, option = 'SAGE_BROKER_URL'): Broker {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not echoed: a broker URL may carry credentials.
    throw new InvalidOptionsError(option, 'is not a valid URL; expected e.g. memory://');
  }
  const scheme = parsed.protocol.replace(/:$/, '');
  if (scheme === 'memory') {
    const options: { name?: string; latencyMs?: number } = {};
    for (const [key, value] of parsed.searchParams) {
      if (key !== 'latencyMs')
        throw new InvalidOptionsError(
          option,
          `unknown parameter "${key}" for memory://; known: latencyMs`,
        );
      const latencyMs = Number(value);
      if (!Number.isFinite(latencyMs) || latencyMs < 0)
        throw new InvalidOptionsError(option, `latencyMs must be a number >= 0, got "${value}"`);
      options.latencyMs = latencyMs;
    }
    if (parsed.hostname) options.name = parsed.hostname;
    return new InMemoryBroker(options);
  }
  const planned = PLANNED_SCHEMES.includes(scheme);
  throw new InvalidOptionsError(
    option,
    planned
      ? `the ${scheme}:// broker adapter is not available yet (Kafka, RabbitMQ and NATS adapters are coming); only memory:// is supported for now`
      : `unsupported broker scheme "${scheme}://"; only memory:// is supported for now (kafka://, amqp://, nats:// are planned)`,
  );
}
