import { InMemoryBroker } from '../../brokers/memory/in-memory-broker';
import { InvalidOptionsError } from '../../core/errors';
import type { Broker } from '../../core/ports/broker';
import { silentLogger, type SageLogger } from '../../core/ports/logger';
import { loadOptionalPeer } from '../../optional-peer';

/* The adapters are loaded only for the scheme asked for, so an app that uses RabbitMQ never loads
 * kafkajs or the NATS client (optional brokers stay optional), and one whose client is
 * not installed fails with MissingPeerDependencyError naming the packages. The type-only imports
 * below are erased at compile time. */
import type * as KafkaModule from '../../brokers/kafka/kafka-broker';
import type * as RabbitModule from '../../brokers/rabbitmq/rabbitmq-broker';
import type * as NatsModule from '../../brokers/nats/nats-broker';

const SCHEMES = 'memory://, kafka://, amqp://, amqps://, nats://';

/**
 * A Broker from a URL, for deployments configured by environment (`SAGE_BROKER_URL`) or
 * `SagaOutboxModule.forRoot({ broker: 'nats://…' })`:
 *
 * - `memory://[name][?latencyMs=N]`: in-process (tests and demos; nothing leaves the process);
 * - `kafka://host:port[,host:port…][?clientId=ID]`: Kafka (idempotent producer, acks=all);
 * - `amqp[s]://user:pass@host:port[/vhost][?exchange=NAME&queueType=quorum|classic]`: RabbitMQ;
 * - `nats://host:port[,host:port…][?stream=NAME&prefix=PREFIX.]`: NATS JetStream.
 *
 * Unknown schemes or parameters → InvalidOptionsError before anything is opened. Credentials in a
 * URL are never echoed in errors. `logger` is the adapter's (dead letters, reconnects, handler
 * failures): the module and `sage-relay` pass the app's.
 */
export function brokerFromUrl(
  url: string,
  option = 'SAGE_BROKER_URL',
  logger: SageLogger = silentLogger,
): Broker {
  // Kafka and NATS take a host list (`h1:9092,h2:9092`), which URL cannot parse: parse with the
  // first host, keep the raw list for hosts().
  const authority = url.includes('://')
    ? (url.slice(url.indexOf('://') + 3).split(/[/?#]/)[0] ?? '')
    : '';
  let parsed: URL;
  try {
    parsed = new URL(
      authority.includes(',') ? url.replace(authority, authority.split(',')[0]!) : url,
    );
  } catch {
    throw new InvalidOptionsError(option, `is not a valid URL; expected one of ${SCHEMES}`);
  }
  const scheme = parsed.protocol.replace(/:$/, '');
  const params = (known: readonly string[]): Map<string, string> => {
    const out = new Map<string, string>();
    for (const [key, value] of parsed.searchParams) {
      if (!known.includes(key)) {
        throw new InvalidOptionsError(
          option,
          `unknown parameter "${key}" for ${scheme}://; known: ${known.join(', ') || '(none)'}`,
        );
      }
      out.set(key, value);
    }
    return out;
  };
  // host:port list from the authority (URL keeps only the first host; read the raw text).
  const hosts = (defaultPort: number): string[] => {
    const list = authority
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean)
      .map((h) => (/:\d+$/.test(h) ? h : `${h}:${defaultPort}`));
    if (!list.length) throw new InvalidOptionsError(option, `${scheme}:// needs at least one host`);
    return list;
  };

  switch (scheme) {
    case 'memory': {
      const p = params(['latencyMs']);
      const options: { name?: string; latencyMs?: number } = {};
      const latency = p.get('latencyMs');
      if (latency !== undefined) {
        const latencyMs = Number(latency);
        if (!Number.isFinite(latencyMs) || latencyMs < 0)
          throw new InvalidOptionsError(
            option,
            `latencyMs must be a number >= 0, got "${latency}"`,
          );
        options.latencyMs = latencyMs;
      }
      if (parsed.hostname) options.name = parsed.hostname;
      return new InMemoryBroker(options);
    }
    case 'kafka': {
      const p = params(['clientId']);
      const { KafkaBroker } = loadOptionalPeer(
        `${option}=kafka://`,
        ['kafkajs'],
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: only the adapter in use is loaded
        () => require('../../brokers/kafka/kafka-broker') as typeof KafkaModule,
      );
      return new KafkaBroker({ brokers: hosts(9092), clientId: p.get('clientId'), logger });
    }
    case 'amqp':
    case 'amqps': {
      const p = params(['exchange', 'queueType']);
      const queueType = p.get('queueType');
      if (queueType !== undefined && queueType !== 'quorum' && queueType !== 'classic')
        throw new InvalidOptionsError(option, 'queueType must be quorum or classic');
      const clean = new URL(url);
      clean.search = '';
      const { RabbitMqBroker } = loadOptionalPeer(
        `${option}=${scheme}://`,
        ['amqplib', 'amqp-connection-manager'],
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: only the adapter in use is loaded
        () => require('../../brokers/rabbitmq/rabbitmq-broker') as typeof RabbitModule,
      );
      return new RabbitMqBroker({
        url: clean.toString(),
        exchange: p.get('exchange'),
        queueType: queueType,
        logger,
      });
    }
    case 'nats': {
      const p = params(['stream', 'prefix']);
      const { NatsJetStreamBroker } = loadOptionalPeer(
        `${option}=nats://`,
        ['@nats-io/transport-node', '@nats-io/jetstream'],
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: only the adapter in use is loaded
        () => require('../../brokers/nats/nats-broker') as typeof NatsModule,
      );
      return new NatsJetStreamBroker({
        servers: hosts(4222).map((h) => `nats://${h}`),
        stream: p.get('stream'),
        subjectPrefix: p.get('prefix'),
        logger,
      });
    }
    default:
      throw new InvalidOptionsError(
        option,
        `unsupported broker scheme "${scheme}://"; supported: ${SCHEMES}`,
      );
  }
}
