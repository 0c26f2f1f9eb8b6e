import type { SASLOptions } from 'kafkajs';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { InvalidOptionsError } from '../../core/errors';
import type { SageLogger } from '../../core/ports/logger';

/** The SASL mechanisms Sage checks and documents (kafkajs's `aws` and `oauthbearer` pass through unchecked). */
export const KAFKA_SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
export type KafkaSaslMechanism = (typeof KAFKA_SASL_MECHANISMS)[number];

/**
 * TLS to the brokers: `true` (Node's trusted CAs) or Node's `tls.connect` options — `ca` (PEM of
 * a private CA), `cert` + `key` (client certificate for `ssl.client.auth=required`),
 * `passphrase`, `servername`, `rejectUnauthorized` (default true). Contents, not paths.
 */
export type KafkaSslOptions = boolean | TlsConnectionOptions;

/**
 * SASL authentication: `mechanism` (`plain`, `scram-sha-256` or `scram-sha-512`), `username`,
 * `password` (or another kafkajs mechanism, passed through as is).
 */
export type KafkaSaslOptions = SASLOptions;

/**
 * `ssl` and `sasl` checked, before anything connects: InvalidOptionsError naming the option for a
 * wrong type, an unknown mechanism or a missing username/password (never echoing a value). SASL
 * PLAIN without TLS sends the password in clear: warned about once, not refused (a private
 * network's SASL_PLAINTEXT listener is a deployment's choice).
 */
export function checkKafkaSecurity(
  ssl: unknown,
  sasl: unknown,
  logger: SageLogger,
): { ssl: KafkaSslOptions | undefined; sasl: KafkaSaslOptions | undefined } {
  if (ssl !== undefined && typeof ssl !== 'boolean' && (typeof ssl !== 'object' || ssl === null))
    throw new InvalidOptionsError(
      'kafka.ssl',
      'must be true, false or TLS options ({ ca, cert, key, ... })',
    );
  if (ssl && typeof ssl === 'object') {
    const { cert, key } = ssl as TlsConnectionOptions;
    if ((cert === undefined) !== (key === undefined))
      throw new InvalidOptionsError(
        cert === undefined ? 'kafka.ssl.cert' : 'kafka.ssl.key',
        'a client certificate needs both ssl.cert and ssl.key',
      );
  }
  if (sasl === undefined) return { ssl: ssl, sasl: undefined };
  if (typeof sasl !== 'object' || sasl === null)
    throw new InvalidOptionsError(
      'kafka.sasl',
      'must be { mechanism: "plain" | "scram-sha-256" | "scram-sha-512", username, password }',
    );
  const { mechanism, username, password } = sasl as {
    mechanism?: unknown;
    username?: unknown;
    password?: unknown;
  };
  const known = KAFKA_SASL_MECHANISMS as readonly unknown[];
  if (mechanism === 'aws' || mechanism === 'oauthbearer')
    return { ssl: ssl, sasl: sasl as KafkaSaslOptions };
  if (!known.includes(mechanism))
    throw new InvalidOptionsError(
      'kafka.sasl.mechanism',
      `must be one of ${KAFKA_SASL_MECHANISMS.join(', ')} (or kafkajs's aws, oauthbearer)`,
    );
  if (typeof username !== 'string' || !username)
    throw new InvalidOptionsError(
      'kafka.sasl.username',
      `is required for SASL ${String(mechanism)}`,
    );
  if (typeof password !== 'string' || !password)
    throw new InvalidOptionsError(
      'kafka.sasl.password',
      `is required for SASL ${String(mechanism)}`,
    );
  if (mechanism === 'plain' && !ssl)
    logger.warn(
      'kafka: SASL PLAIN without ssl sends the password in clear text; set ssl (a SASL_SSL listener) unless the network is private',
    );
  return { ssl: ssl, sasl: sasl as KafkaSaslOptions };
}
