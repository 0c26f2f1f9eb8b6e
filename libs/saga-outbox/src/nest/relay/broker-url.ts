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
import type { NatsSecurityOptions } from '../../brokers/nats/nats-security-options';
import type { RabbitMqTlsOptions } from '../../brokers/rabbitmq/rabbitmq-tls';
import { kafkaUrlConnection, type KafkaUrlSecurity } from './kafka-url';

const SCHEMES = 'memory://, kafka://, amqp://, amqps://, nats://, tls://';

/**
 * TLS and credentials that do not fit in a URL (CA and client certificates, NKEY seeds, creds
 * files), per adapter; `sage-relay` fills them from its environment. Applied only to the adapter
 * the URL's scheme selects.
 */
export interface BrokerUrlSecurity {
  /** For `nats://` and `tls://`: merged over the URL's user/password or token. */
  nats?: NatsSecurityOptions;
  /** For `kafka://`: TLS (`ssl`) and SASL settings; see kafka-url.ts for how they meet the URL's. */
  kafka?: KafkaUrlSecurity;
  /** For `amqps://`: CA and client certificate (the user and password stay in the URL). */
  rabbitmq?: { tls?: RabbitMqTlsOptions };
}

/**
 * A Broker from a URL, for deployments configured by environment (`SAGE_BROKER_URL`) or
 * `SagaOutboxModule.forRoot({ broker: 'nats://…' })`:
 *
 * - `memory://[name][?latencyMs=N]`: in-process (tests and demos; nothing leaves the process);
 * - `kafka://[user:password@]host:port[,host:port…][?clientId=ID&ssl=true&sasl=MECHANISM]`:
 *   Kafka (idempotent producer, acks=all); MECHANISM `plain`, `scram-sha-256` or `scram-sha-512`,
 *   required with credentials (see kafka-url.ts);
 * - `amqp[s]://user:pass@host:port[/vhost][?exchange=NAME&queueType=quorum|classic]`: RabbitMQ;
 * - `nats://[user:password@|token@]host:port[,host:port…][?stream=NAME&prefix=PREFIX.]`: NATS
 *   JetStream; `tls://…` the same over TLS (required).
 *
 * Unknown schemes or parameters → InvalidOptionsError before anything is opened. Credentials in a
 * URL are never echoed in errors. `logger` is the adapter's (dead letters, reconnects, handler
 * failures): the module and `sage-relay` pass the app's.
 */
export function brokerFromUrl(
  url: string,
  option = 'SAGE_BROKER_URL',
  logger: SageLogger = silentLogger,
  security: BrokerUrlSecurity = {},
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
      const p = params(['clientId', 'ssl', 'sasl']);
      const connection = kafkaUrlConnection(parsed, p, security.kafka ?? {}, option);
      const { KafkaBroker } = loadOptionalPeer(
        `${option}=kafka://`,
        ['kafkajs'],
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: only the adapter in use is loaded
        () => require('../../brokers/kafka/kafka-broker') as typeof KafkaModule,
      );
      return new KafkaBroker({
        // The credentials stay out of the host list (`user:pass@host:9092` was a host once).
        brokers: hosts(9092).map((h) => h.replace(/^.*@/, '')),
        clientId: p.get('clientId'),
        ...connection,
        logger,
      });
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
        tls: security.rabbitmq?.tls,
        logger,
      });
    }
    case 'nats':
    case 'tls': {
      const p = params(['stream', 'prefix']);
      const { NatsJetStreamBroker } = loadOptionalPeer(
        `${option}=${scheme}://`,
        ['@nats-io/transport-node', '@nats-io/jetstream'],
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: only the adapter in use is loaded
        () => require('../../brokers/nats/nats-broker') as typeof NatsModule,
      );
      // nats://user:password@host or nats://token@host, as the nats CLI takes them (first host only).
      const fromUrl: NatsSecurityOptions = parsed.password
        ? {
            user: decodeURIComponent(parsed.username),
            password: decodeURIComponent(parsed.password),
          }
        : parsed.username
          ? { token: decodeURIComponent(parsed.username) }
          : {};
      const explicit = security.nats ?? {};
      const explicitAuth = ['user', 'password', 'token', 'nkeySeed', 'credsFile'].some(
        (k) => explicit[k as keyof NatsSecurityOptions] !== undefined,
      );
      if (explicitAuth && (parsed.username || parsed.password))
        throw new InvalidOptionsError(
          option,
          'holds NATS credentials and NATS credentials are also given separately (SAGE_NATS_* variables or options); keep one (the URL is not shown)',
        );
      return new NatsJetStreamBroker({
        servers: hosts(4222).map((h) => `${scheme}://${h.replace(/^[^@]*@/, '')}`),
        stream: p.get('stream'),
        subjectPrefix: p.get('prefix'),
        ...fromUrl,
        ...explicit,
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
