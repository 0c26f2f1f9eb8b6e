/**
 * TLS and SASL of the standalone relay's Kafka and RabbitMQ connections, from the environment:
 * each secret has a `*_FILE` variant for mounted secrets (envSecret). Values are never logged nor
 * put in errors; an error names the variable and what to do.
 */
import type { KafkaSaslMechanism } from '../brokers/kafka/kafka-security';
import type { RabbitMqTlsOptions } from '../brokers/rabbitmq/rabbitmq-tls';
import { InvalidOptionsError } from '../core/errors';
import type { KafkaUrlSecurity } from '../nest/relay/kafka-url';
import { envSecret } from './env-secret';

const KAFKA_VARIABLES = [
  'SAGE_KAFKA_SSL',
  'SAGE_KAFKA_SSL_CA',
  'SAGE_KAFKA_SSL_CERT',
  'SAGE_KAFKA_SSL_KEY',
  'SAGE_KAFKA_SASL_MECHANISM',
  'SAGE_KAFKA_SASL_USERNAME',
  'SAGE_KAFKA_SASL_PASSWORD',
];
const RABBITMQ_VARIABLES = [
  'SAGE_RABBITMQ_TLS_CA',
  'SAGE_RABBITMQ_TLS_CERT',
  'SAGE_RABBITMQ_TLS_KEY',
];
const MECHANISMS: readonly KafkaSaslMechanism[] = ['plain', 'scram-sha-256', 'scram-sha-512'];

/** The first of `names` (or its `_FILE`) that is set, if any. */
function firstSet(env: NodeJS.ProcessEnv, names: readonly string[]): string | undefined {
  for (const name of names)
    for (const variable of [name, `${name}_FILE`]) if (env[variable]?.trim()) return variable;
  return undefined;
}

/** `cert` and `key` go together: InvalidOptionsError naming the one missing. */
function certAndKey(
  prefix: string,
  cert: string | undefined,
  key: string | undefined,
): { cert?: string; key?: string } {
  if ((cert === undefined) !== (key === undefined))
    throw new InvalidOptionsError(
      cert === undefined ? `${prefix}_CERT` : `${prefix}_KEY`,
      `a client certificate and its key go together: set both ${prefix}_CERT and ${prefix}_KEY (or their _FILE variants)`,
    );
  return cert !== undefined ? { cert, key } : {};
}

/**
 * Kafka's TLS and SASL settings: `SAGE_KAFKA_SSL=true|false`, `SAGE_KAFKA_SSL_CA` / `_CERT` /
 * `_KEY` (PEM, or `_FILE`; any of them turns TLS on), `SAGE_KAFKA_SASL_MECHANISM`
 * (plain, scram-sha-256, scram-sha-512), `SAGE_KAFKA_SASL_USERNAME`, `SAGE_KAFKA_SASL_PASSWORD`
 * (or `_FILE`). Undefined when none is set; InvalidOptionsError when set for a broker URL that is
 * not `kafka://`.
 */
export function readRelayKafkaSecurity(
  env: NodeJS.ProcessEnv,
  brokerUrl: string,
): KafkaUrlSecurity | undefined {
  const set = firstSet(env, KAFKA_VARIABLES);
  if (set === undefined) return undefined;
  if (!brokerUrl.startsWith('kafka:'))
    throw new InvalidOptionsError(
      set,
      'is set but SAGE_BROKER_URL is not kafka://; unset it or point SAGE_BROKER_URL at Kafka',
    );
  const flag = env.SAGE_KAFKA_SSL?.trim().toLowerCase();
  if (flag !== undefined && flag !== '' && flag !== 'true' && flag !== 'false')
    throw new InvalidOptionsError('SAGE_KAFKA_SSL', 'must be true or false');
  const ca = envSecret(env, 'SAGE_KAFKA_SSL_CA');
  const client = certAndKey(
    'SAGE_KAFKA_SSL',
    envSecret(env, 'SAGE_KAFKA_SSL_CERT'),
    envSecret(env, 'SAGE_KAFKA_SSL_KEY'),
  );
  const tlsFiles = ca !== undefined || client.cert !== undefined;
  if (flag === 'false' && tlsFiles)
    throw new InvalidOptionsError(
      'SAGE_KAFKA_SSL',
      'is false but SAGE_KAFKA_SSL_CA / _CERT / _KEY are set',
    );
  const security: KafkaUrlSecurity = {};
  if (tlsFiles) security.ssl = { ...(ca !== undefined ? { ca } : {}), ...client };
  else if (flag === 'true') security.ssl = true;

  const mechanism = env.SAGE_KAFKA_SASL_MECHANISM?.trim().toLowerCase() || undefined;
  if (mechanism !== undefined && !(MECHANISMS as readonly string[]).includes(mechanism))
    throw new InvalidOptionsError(
      'SAGE_KAFKA_SASL_MECHANISM',
      `must be one of ${MECHANISMS.join(', ')}, got "${mechanism}"`,
    );
  const username = env.SAGE_KAFKA_SASL_USERNAME?.trim() || undefined;
  const password = envSecret(env, 'SAGE_KAFKA_SASL_PASSWORD');
  if ((username === undefined) !== (password === undefined))
    throw new InvalidOptionsError(
      username === undefined ? 'SAGE_KAFKA_SASL_USERNAME' : 'SAGE_KAFKA_SASL_PASSWORD',
      'SASL needs both SAGE_KAFKA_SASL_USERNAME and SAGE_KAFKA_SASL_PASSWORD (or SAGE_KAFKA_SASL_PASSWORD_FILE)',
    );
  if (mechanism !== undefined || username !== undefined)
    security.sasl = {
      ...(mechanism !== undefined ? { mechanism: mechanism as KafkaSaslMechanism } : {}),
      ...(username !== undefined ? { username, password } : {}),
    };
  return security;
}

/**
 * RabbitMQ's TLS settings: `SAGE_RABBITMQ_TLS_CA`, `SAGE_RABBITMQ_TLS_CERT`,
 * `SAGE_RABBITMQ_TLS_KEY` (PEM, or `_FILE`). The user and password stay in SAGE_BROKER_URL.
 * Undefined when none is set; InvalidOptionsError when set for a URL that is not `amqps://`.
 */
export function readRelayRabbitMqSecurity(
  env: NodeJS.ProcessEnv,
  brokerUrl: string,
): { tls: RabbitMqTlsOptions } | undefined {
  const set = firstSet(env, RABBITMQ_VARIABLES);
  if (set === undefined) return undefined;
  if (!brokerUrl.startsWith('amqps:'))
    throw new InvalidOptionsError(
      set,
      `is set but SAGE_BROKER_URL is not amqps://${brokerUrl.startsWith('amqp:') ? ' (amqp:// is not encrypted: use amqps://)' : ''}; unset it or point SAGE_BROKER_URL at RabbitMQ over TLS`,
    );
  const ca = envSecret(env, 'SAGE_RABBITMQ_TLS_CA');
  const client = certAndKey(
    'SAGE_RABBITMQ_TLS',
    envSecret(env, 'SAGE_RABBITMQ_TLS_CERT'),
    envSecret(env, 'SAGE_RABBITMQ_TLS_KEY'),
  );
  return { tls: { ...(ca !== undefined ? { ca } : {}), ...client } };
}
