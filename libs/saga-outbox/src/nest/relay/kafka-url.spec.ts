import { InvalidOptionsError } from '../../core/errors';
import { brokerFromUrl } from './broker-url';
import { kafkaUrlConnection, type KafkaUrlSecurity } from './kafka-url';

/** kafkaUrlConnection as brokerFromUrl calls it. */
function connection(url: string, security: KafkaUrlSecurity = {}) {
  const parsed = new URL(url);
  return kafkaUrlConnection(parsed, new Map(parsed.searchParams), security, 'SAGE_BROKER_URL');
}

function failure(run: () => unknown): InvalidOptionsError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionsError);
    return error as InvalidOptionsError;
  }
  throw new Error('expected an InvalidOptionsError');
}

describe('kafka:// URLs: TLS and SASL', () => {
  it('plain kafka:// has neither', () => {
    expect(connection('kafka://k1:9092')).toEqual({});
  });

  it('reads ssl=true and percent-encoded credentials with an explicit mechanism', () => {
    expect(
      connection('kafka://svc%40orders:p%40ss%3Aword@k1:9092?ssl=true&sasl=scram-sha-512'),
    ).toEqual({
      ssl: true,
      sasl: { mechanism: 'scram-sha-512', username: 'svc@orders', password: 'p@ss:word' },
    });
  });

  it('takes TLS settings and credentials given separately (the relay environment)', () => {
    const ca = '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----';
    expect(
      connection('kafka://k1:9092', {
        ssl: { ca },
        sasl: { mechanism: 'plain', username: 'relay', password: 'pw' },
      }),
    ).toEqual({ ssl: { ca }, sasl: { mechanism: 'plain', username: 'relay', password: 'pw' } });
    expect(
      connection('kafka://k1:9092?sasl=scram-sha-256', {
        sasl: { username: 'relay', password: 'pw' },
      }),
    ).toEqual({ sasl: { mechanism: 'scram-sha-256', username: 'relay', password: 'pw' } });
  });

  it.each([
    [
      'kafka://user:hunter2-secret@k1:9092',
      {},
      'holds credentials but no SASL mechanism; add ?sasl=plain',
    ],
    ['kafka://user:hunter2-secret@k1:9092?sasl=md5', {}, 'unknown SASL mechanism "md5"'],
    ['kafka://k1:9092?sasl=plain', {}, 'SASL plain needs a username and a password'],
    ['kafka://k1:9092?ssl=yes', {}, 'ssl must be true or false'],
    [
      'kafka://k1:9092?ssl=false',
      { ssl: true },
      'says ssl=false but TLS settings are given separately',
    ],
    [
      'kafka://user:hunter2-secret@k1:9092?sasl=plain',
      { sasl: { username: 'u', password: 'hunter2-secret' } },
      'credentials are also given separately',
    ],
    [
      'kafka://k1:9092?sasl=plain',
      { sasl: { mechanism: 'scram-sha-512' as const, username: 'u', password: 'hunter2-secret' } },
      'says sasl=plain but the SASL mechanism is also given separately as scram-sha-512',
    ],
    [
      'kafka://k1:9092',
      { sasl: { username: 'u', password: 'hunter2-secret' } },
      'but no mechanism',
    ],
  ])('%s (%j) → InvalidOptionsError: %s', (url, security, says) => {
    const error = failure(() => connection(url, security));
    expect(error.option).toBe('SAGE_BROKER_URL');
    expect(error.message).toContain(says);
    expect(error.message).not.toContain('hunter2-secret');
  });

  it('brokerFromUrl: credentials never end up in the host list (was port NaN)', async () => {
    const broker = brokerFromUrl('kafka://user:pw@k1:9092,k2?sasl=scram-sha-512&ssl=true');
    // The address in messages is the bootstrap list, without the credentials.
    const probe = await broker.probe!(1);
    expect(probe.detail).toContain('Kafka at k1:9092, k2:9092');
    expect(probe.detail).not.toContain('pw');
    await broker.close();
    expect(() => brokerFromUrl('kafka://user:hunter2-secret@k1:9092')).toThrow(
      'holds credentials but no SASL mechanism',
    );
  });
});
