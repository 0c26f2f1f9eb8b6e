import { InvalidOptionsError } from '../../core/errors';
import {
  KAFKA_SASL_MECHANISMS,
  type KafkaSaslMechanism,
  type KafkaSslOptions,
} from '../../brokers/kafka/kafka-security';

/**
 * Kafka TLS and SASL settings that do not fit in a URL (a CA, a password from a mounted file);
 * `sage-relay` fills them from `SAGE_KAFKA_SSL*` and `SAGE_KAFKA_SASL_*`.
 */
export interface KafkaUrlSecurity {
  /** TLS: true, or `{ ca, cert, key, ... }` (which implies TLS). */
  ssl?: KafkaSslOptions;
  /** SASL settings; the mechanism may come from the URL's `sasl=` instead. */
  sasl?: { mechanism?: KafkaSaslMechanism; username?: string; password?: string };
}

/** What a `kafka://` URL and the separate settings make: KafkaBroker's `ssl` and `sasl`. */
export interface KafkaUrlConnection {
  ssl?: KafkaSslOptions;
  sasl?: { mechanism: KafkaSaslMechanism; username: string; password: string };
}

/**
 * The grammar: `kafka://[user:password@]host:port[,host:port…][?ssl=true&sasl=MECHANISM]` with
 * MECHANISM `plain`, `scram-sha-256` or `scram-sha-512`. Credentials in the URL need `sasl=` (the
 * mechanism is never guessed) and must be percent-encoded; without them the username and password
 * come from `security.sasl` — both places at once is refused. `ssl=true` (or TLS settings in
 * `security.ssl`) turns TLS on. No error repeats a credential.
 */
export function kafkaUrlConnection(
  url: URL,
  params: Map<string, string>,
  security: KafkaUrlSecurity,
  option: string,
): KafkaUrlConnection {
  const out: KafkaUrlConnection = {};
  const sslParam = params.get('ssl');
  if (sslParam !== undefined && sslParam !== 'true' && sslParam !== 'false')
    throw new InvalidOptionsError(option, 'ssl must be true or false');
  if (sslParam === 'false' && security.ssl)
    throw new InvalidOptionsError(
      option,
      'says ssl=false but TLS settings are given separately (SAGE_KAFKA_SSL*); drop one',
    );
  if (security.ssl) out.ssl = security.ssl;
  else if (sslParam === 'true') out.ssl = true;

  const fromUrl = url.username || url.password;
  const separate = security.sasl ?? {};
  const mechanism = params.get('sasl') ?? separate.mechanism;
  if (params.has('sasl') && separate.mechanism && params.get('sasl') !== separate.mechanism)
    throw new InvalidOptionsError(
      option,
      `says sasl=${params.get('sasl')} but the SASL mechanism is also given separately as ${separate.mechanism}; keep one`,
    );
  if (mechanism === undefined) {
    if (fromUrl)
      throw new InvalidOptionsError(
        option,
        'holds credentials but no SASL mechanism; add ?sasl=plain, ?sasl=scram-sha-256 or ?sasl=scram-sha-512 (and ssl=true), or pass them separately (the URL is not shown)',
      );
    if (separate.username !== undefined || separate.password !== undefined)
      throw new InvalidOptionsError(
        option,
        'SASL username/password are given but no mechanism; set sasl=MECHANISM in the URL or SAGE_KAFKA_SASL_MECHANISM',
      );
    return out;
  }
  if (!(KAFKA_SASL_MECHANISMS as readonly string[]).includes(mechanism))
    throw new InvalidOptionsError(
      option,
      `unknown SASL mechanism "${mechanism}"; supported: ${KAFKA_SASL_MECHANISMS.join(', ')}`,
    );
  if (fromUrl && (separate.username !== undefined || separate.password !== undefined))
    throw new InvalidOptionsError(
      option,
      'holds Kafka credentials and credentials are also given separately (SAGE_KAFKA_SASL_* variables or options); keep one (the URL is not shown)',
    );
  const username = fromUrl ? decodeURIComponent(url.username) : separate.username;
  const password = fromUrl ? decodeURIComponent(url.password) : separate.password;
  if (!username || !password)
    throw new InvalidOptionsError(
      option,
      `SASL ${mechanism} needs a username and a password: kafka://user:password@host:9092?sasl=${mechanism}, or SAGE_KAFKA_SASL_USERNAME and SAGE_KAFKA_SASL_PASSWORD(_FILE)`,
    );
  out.sasl = { mechanism: mechanism as KafkaSaslMechanism, username, password };
  return out;
}
