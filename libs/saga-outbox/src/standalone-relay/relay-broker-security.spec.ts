import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidOptionsError } from '../core/errors';
import { readRelayKafkaSecurity, readRelayRabbitMqSecurity } from './relay-broker-security';

const dir = mkdtempSync(join(tmpdir(), 'sage-relay-env-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe('readRelayKafkaSecurity', () => {
  it('is undefined without SAGE_KAFKA_* variables', () => {
    expect(readRelayKafkaSecurity({}, 'kafka://k:9092')).toBeUndefined();
  });

  it('reads TLS and SASL, secrets from _FILE with the trailing newline dropped', () => {
    expect(
      readRelayKafkaSecurity(
        {
          SAGE_KAFKA_SSL_CA_FILE: file('ca.pem', 'CA-PEM\n'),
          SAGE_KAFKA_SSL_CERT: 'CERT-PEM',
          SAGE_KAFKA_SSL_KEY_FILE: file('key.pem', 'KEY-PEM\n'),
          SAGE_KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
          SAGE_KAFKA_SASL_USERNAME: 'relay',
          SAGE_KAFKA_SASL_PASSWORD_FILE: file('pw', 'hunter2\n'),
        },
        'kafka://k:9092',
      ),
    ).toEqual({
      ssl: { ca: 'CA-PEM', cert: 'CERT-PEM', key: 'KEY-PEM' },
      sasl: { mechanism: 'scram-sha-512', username: 'relay', password: 'hunter2' },
    });
    expect(readRelayKafkaSecurity({ SAGE_KAFKA_SSL: 'true' }, 'kafka://k:9092')).toEqual({
      ssl: true,
    });
  });

  it.each([
    [{ SAGE_KAFKA_SSL: 'true' }, 'amqp://h', 'SAGE_KAFKA_SSL', 'SAGE_BROKER_URL is not kafka://'],
    [{ SAGE_KAFKA_SSL: 'yes' }, 'kafka://k', 'SAGE_KAFKA_SSL', 'must be true or false'],
    [
      { SAGE_KAFKA_SSL: 'false', SAGE_KAFKA_SSL_CA: 'x' },
      'kafka://k',
      'SAGE_KAFKA_SSL',
      'is false',
    ],
    [{ SAGE_KAFKA_SSL_CERT: 'c' }, 'kafka://k', 'SAGE_KAFKA_SSL_KEY', 'set both'],
    [
      { SAGE_KAFKA_SASL_MECHANISM: 'gssapi' },
      'kafka://k',
      'SAGE_KAFKA_SASL_MECHANISM',
      'must be one of',
    ],
    [
      { SAGE_KAFKA_SASL_PASSWORD: 'hunter2' },
      'kafka://k',
      'SAGE_KAFKA_SASL_USERNAME',
      'needs both',
    ],
    [
      { SAGE_KAFKA_SASL_PASSWORD: 'hunter2', SAGE_KAFKA_SASL_PASSWORD_FILE: '/x' },
      'kafka://k',
      'SAGE_KAFKA_SASL_PASSWORD',
      'both set',
    ],
    [
      { SAGE_KAFKA_SASL_PASSWORD_FILE: '/nonexistent/pw' },
      'kafka://k',
      'SAGE_KAFKA_SASL_PASSWORD_FILE',
      'cannot read',
    ],
  ])('%j with %s → InvalidOptionsError naming %s', (env, url, option, says) => {
    let error: unknown;
    try {
      readRelayKafkaSecurity(env, url);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as InvalidOptionsError).option).toBe(option);
    expect((error as Error).message).toContain(says);
    expect((error as Error).message).not.toContain('hunter2');
  });
});

describe('readRelayRabbitMqSecurity', () => {
  it('reads the CA and client certificate (or their _FILE)', () => {
    expect(readRelayRabbitMqSecurity({}, 'amqps://h')).toBeUndefined();
    expect(
      readRelayRabbitMqSecurity(
        {
          SAGE_RABBITMQ_TLS_CA_FILE: file('rca.pem', 'CA\n'),
          SAGE_RABBITMQ_TLS_CERT: 'CERT',
          SAGE_RABBITMQ_TLS_KEY_FILE: file('rkey.pem', 'KEY\n'),
        },
        'amqps://u:p@h',
      ),
    ).toEqual({ tls: { ca: 'CA', cert: 'CERT', key: 'KEY' } });
  });

  it.each([
    [
      { SAGE_RABBITMQ_TLS_CA: 'x' },
      'amqp://h',
      'SAGE_RABBITMQ_TLS_CA',
      'amqp:// is not encrypted: use amqps://',
    ],
    [{ SAGE_RABBITMQ_TLS_KEY: 'secret-key' }, 'amqps://h', 'SAGE_RABBITMQ_TLS_CERT', 'set both'],
  ])('%j with %s → InvalidOptionsError naming %s', (env, url, option, says) => {
    let error: unknown;
    try {
      readRelayRabbitMqSecurity(env, url);
    } catch (e) {
      error = e;
    }
    expect((error as InvalidOptionsError).option).toBe(option);
    expect((error as Error).message).toContain(says);
    expect((error as Error).message).not.toContain('secret-key');
  });
});
