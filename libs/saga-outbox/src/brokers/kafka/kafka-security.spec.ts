import { InvalidOptionsError } from '../../core/errors';
import { checkKafkaSecurity } from './kafka-security';

const logger = { debug: jest.fn(), info: jest.fn(), warn: jest.fn(), error: jest.fn() };

describe('checkKafkaSecurity', () => {
  it('passes valid ssl and sasl through; warns about PLAIN without TLS', () => {
    const sasl = { mechanism: 'scram-sha-512' as const, username: 'u', password: 'hunter2' };
    expect(checkKafkaSecurity({ ca: 'CA' }, sasl, logger)).toEqual({ ssl: { ca: 'CA' }, sasl });
    expect(logger.warn).not.toHaveBeenCalled();
    checkKafkaSecurity(
      undefined,
      { mechanism: 'plain', username: 'u', password: 'hunter2' },
      logger,
    );
    expect(logger.warn).toHaveBeenCalledWith(expect.stringContaining('SASL PLAIN without ssl'));
    expect(JSON.stringify(logger.warn.mock.calls)).not.toContain('hunter2');
  });

  it.each([
    ['yes', undefined, 'kafka.ssl'],
    [{ cert: 'C' }, undefined, 'kafka.ssl.key'],
    [true, 'plain', 'kafka.sasl'],
    [true, { mechanism: 'gssapi', username: 'u', password: 'hunter2' }, 'kafka.sasl.mechanism'],
    [true, { mechanism: 'plain', password: 'hunter2' }, 'kafka.sasl.username'],
    [true, { mechanism: 'scram-sha-256', username: 'u' }, 'kafka.sasl.password'],
  ])('ssl %j, sasl %j → InvalidOptionsError naming %s', (ssl, sasl, option) => {
    let error: unknown;
    try {
      checkKafkaSecurity(ssl, sasl, logger);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as InvalidOptionsError).option).toBe(option);
    expect((error as Error).message).not.toContain('hunter2');
  });
});
