import { generateKeyPairSync } from 'node:crypto';
import { InvalidOptionsError } from '../../core/errors';
import { rabbitMqSocketOptions } from './rabbitmq-tls';

// A private key made for this run: no key material is written in the repository.
const KEY = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString();
const CERT = '-----BEGIN CERTIFICATE-----\nc\n-----END CERTIFICATE-----';

describe('rabbitMqSocketOptions', () => {
  it('is TCP_NODELAY alone without tls', () => {
    expect(rabbitMqSocketOptions(['amqp://h'], undefined)).toEqual({ noDelay: true });
  });

  it('passes a CA, a client certificate and the other TLS settings to the socket', () => {
    expect(
      rabbitMqSocketOptions(['amqps://h1', 'amqps://h2'], {
        ca: CERT,
        cert: CERT,
        key: Buffer.from(KEY),
        passphrase: 'pp',
        servername: 'rabbit.internal',
        rejectUnauthorized: true,
      }),
    ).toEqual({
      noDelay: true,
      ca: [CERT],
      cert: CERT,
      key: Buffer.from(KEY),
      passphrase: 'pp',
      servername: 'rabbit.internal',
      rejectUnauthorized: true,
    });
  });

  it.each([
    [['amqps://h', 'amqp://h2'], { ca: CERT }, 'tls', 'use amqps:// URLs'],
    [['amqps://h'], { cert: CERT }, 'tls.key', 'needs both tls.cert and tls.key'],
    [['amqps://h'], { key: KEY }, 'tls.cert', 'needs both tls.cert and tls.key'],
    [['amqps://h'], { ca: [] }, 'tls.ca', 'must be PEM text'],
    [['amqps://h'], { key: 42, cert: CERT }, 'tls.key', 'must be PEM text'],
    [['amqps://h'], { rejectUnauthorized: 'no' }, 'tls.rejectUnauthorized', 'true or false'],
  ])('%j with %j → InvalidOptionsError naming %s', (urls, tls, option, says) => {
    let error: unknown;
    try {
      rabbitMqSocketOptions(urls, tls as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as InvalidOptionsError).option).toBe(option);
    expect((error as Error).message).toContain(says);
    expect((error as Error).message).not.toContain('secret-key-material');
  });
});
