import { randomBytes } from 'node:crypto';
import { InvalidOptionsError } from '../../core/errors';
import { signingKeys } from '../../core/signing/signing-keys';
import { validateModuleOptions, type SagaOutboxModuleOptions } from '../saga-outbox.options';

const withAudit = (audit: unknown) =>
  validateModuleOptions({ audit } as unknown as SagaOutboxModuleOptions);

describe('audit option', () => {
  it('accepts none, and every field in range', () => {
    expect(() => withAudit(undefined)).not.toThrow();
    const hmacKeys = signingKeys({ active: 'a', keys: { a: randomBytes(32) } });
    expect(() =>
      withAudit({
        enabled: false,
        sealIntervalMs: 50,
        batchSize: 10_000,
        retentionMs: 1,
        hmacKeys,
      }),
    ).not.toThrow();
  });

  it.each([
    ['a non-object', 'yes', /^.*audit.*must be an object/],
    [
      'an unknown key',
      { retentionMS: 1 },
      /audit\.retentionMS.*unknown option; known options: enabled/,
    ],
    ['a non-boolean enabled', { enabled: 'false' }, /audit\.enabled.*true or false/],
    ['a zero sealIntervalMs', { sealIntervalMs: 0 }, /audit\.sealIntervalMs.*positive number/],
    ['a negative retentionMs', { retentionMs: -5 }, /audit\.retentionMs.*positive number/],
    ['a batchSize over 10000', { batchSize: 10_001 }, /audit\.batchSize/],
    ['a fractional batchSize', { batchSize: 1.5 }, /audit\.batchSize/],
    [
      'hmacKeys that is not a KeyProvider',
      { hmacKeys: { active: 'a' } },
      /audit\.hmacKeys.*KeyProvider/,
    ],
  ])('refuses %s, naming the option', (_, audit, message) => {
    expect(() => withAudit(audit)).toThrow(InvalidOptionsError);
    expect(() => withAudit(audit)).toThrow(message);
  });
});
