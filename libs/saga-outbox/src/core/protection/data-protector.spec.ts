import { randomBytes } from 'node:crypto';
import { InMemorySubjectKeyStore } from '../../testing/in-memory-subject-key-store';
import { InvalidOptionsError } from '../errors';
import type { JsonValue } from '../json';
import type { SubjectKeyStore } from '../ports/subject-key-store';
import { validateDataProtection, type DataProtectionOptions } from './data-protection-options';
import {
  DataProtector,
  ENCRYPTED_HEADER,
  ProtectedLocation,
  refuseEncryptedWithoutKeys,
} from './data-protector';
import { encryptionKeys } from './encryption-keys';
import { findSealed } from './field-paths';
import {
  DataSubjectMissingError,
  DataUnreadableError,
  SubjectKeyStoreUnavailableError,
} from './protection-errors';
import { isSealedValue } from './sealed-value';

const k1 = randomBytes(32);
const k2 = randomBytes(32);

function protector(
  extra: Partial<DataProtectionOptions> = {},
  keys = encryptionKeys({ active: 'k1', keys: { k1 } }),
): DataProtector {
  return new DataProtector(
    validateDataProtection({
      keys,
      subjectKeys: new InMemorySubjectKeyStore(),
      sagas: {
        order: {
          subject: 'customer.id',
          input: ['customer.email', 'lines.*.note'],
          results: { charge: ['$'] },
        },
        plain: { input: ['secret'] },
      },
      messages: {
        'order.placed': { fields: ['email'], subject: 'customerId' },
        'note.added': { fields: ['$'] },
      },
      ...extra,
    })!,
  );
}

const input: JsonValue = {
  customer: { id: 'c-1', email: 'ada@example.test' },
  lines: [{ sku: 'a', note: 'gift wrap please' }, { sku: 'b' }],
};

/** Every error `work` throws, as a DataUnreadableError reason (fails the test for anything else). */
async function reasonOf(work: () => Promise<unknown>): Promise<string> {
  try {
    await work();
  } catch (error) {
    if (error instanceof DataUnreadableError) return error.reason;
    throw error;
  }
  throw new Error('expected DataUnreadableError');
}

describe('DataProtector', () => {
  it('seals the declared input fields only, and opens them back', async () => {
    const p = protector();
    const sealed = await p.sealSagaInput('order', 's-1', input);
    const text = JSON.stringify(sealed);
    expect(text).not.toContain('ada@example.test');
    expect(text).not.toContain('gift wrap');
    expect(text).toContain('"sku":"a"');
    expect(text).toContain('"id":"c-1"');
    expect(findSealed(sealed)).toHaveLength(2);
    await expect(p.open(sealed, ProtectedLocation.sagaInput('s-1'))).resolves.toEqual(input);
    // The subject's key is used, never a master key, and the envelope names no subject id.
    expect(findSealed(sealed).every((f) => f.sealed.key.startsWith('s:'))).toBe(true);
    expect(text).not.toContain('"s:c-1"');
  });

  it('uses a fresh nonce for every value: the same plaintext never gives the same ciphertext', async () => {
    const p = protector();
    const a = await p.sealSagaInput('plain', 's-1', { secret: 'same' });
    const b = await p.sealSagaInput('plain', 's-1', { secret: 'same' });
    expect(JSON.stringify(a)).not.toEqual(JSON.stringify(b));
  });

  it('a ciphertext moved to another saga, field or message fails as tampered', async () => {
    const p = protector();
    const sealed = (await p.sealSagaInput('plain', 's-1', { secret: 'x' })) as {
      secret: JsonValue;
    };
    const elsewhere = ProtectedLocation.sagaInput('s-2');
    expect(await reasonOf(() => p.open(sealed, elsewhere))).toBe('tampered');
    const otherField = { other: sealed.secret };
    expect(await reasonOf(() => p.open(otherField, ProtectedLocation.sagaInput('s-1')))).toBe(
      'tampered',
    );
    expect(
      await reasonOf(() => p.open(sealed, ProtectedLocation.stepResult('s-1', 'charge'))),
    ).toBe('tampered');
  });

  it('an altered ciphertext fails as tampered, a damaged envelope as malformed', async () => {
    const p = protector();
    const where = ProtectedLocation.sagaInput('s-1');
    const sealed = (await p.sealSagaInput('plain', 's-1', { secret: 'x' })) as {
      secret: { ct: string; iv: string };
    };
    const ct = Buffer.from(sealed.secret.ct, 'base64');
    ct[0] = ct[0]! ^ 1;
    const flipped = { secret: { ...sealed.secret, ct: ct.toString('base64') } };
    expect(await reasonOf(() => p.open(flipped as JsonValue, where))).toBe('tampered');
    const badIv = { secret: { ...sealed.secret, iv: 'AAAA' } };
    expect(await reasonOf(() => p.open(badIv as JsonValue, where))).toBe('malformed');
  });

  it('an unknown master key id is key-unavailable; the message names the location, not the value', async () => {
    const writer = protector({}, encryptionKeys({ active: 'k2', keys: { k2 } }));
    const reader = protector({}, encryptionKeys({ active: 'k1', keys: { k1 } }));
    // A value made for this run: the check below is that it never reaches the message.
    const value = `value-${randomBytes(6).toString('hex')}`;
    const sealed = await writer.sealSagaInput('plain', 's-1', { secret: value });
    const error = await reader
      .open(sealed, ProtectedLocation.sagaInput('s-1'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DataUnreadableError);
    expect((error as DataUnreadableError).reason).toBe('key-unavailable');
    expect((error as DataUnreadableError).code).toBe('DATA_UNREADABLE');
    expect((error as Error).message).toContain('saga/s-1/input /secret');
    expect((error as Error).message).not.toContain(value);
  });

  it('an erased subject makes every copy unreadable (subject-erased), at once in this process', async () => {
    const p = protector();
    const sealed = await p.sealSagaInput('order', 's-1', input);
    const message = await p.sealMessage({
      id: 'm-1',
      type: 'order.placed',
      payload: { customerId: 'c-1', email: 'ada@example.test' },
      headers: {},
    });
    await p.subjectKeys!.erase('c-1');
    expect(await reasonOf(() => p.open(sealed, ProtectedLocation.sagaInput('s-1')))).toBe(
      'subject-erased',
    );
    expect(await reasonOf(() => p.openMessage(message))).toBe('subject-erased');
    // Another subject's data is untouched.
    const other = await p.sealSagaInput('order', 's-2', { customer: { id: 'c-2', email: 'b' } });
    await expect(p.open(other, ProtectedLocation.sagaInput('s-2'))).resolves.toEqual({
      customer: { id: 'c-2', email: 'b' },
    });
  });

  it('refuses a per-subject write without a subject id, before anything is written', async () => {
    const store = new InMemorySubjectKeyStore();
    const p = protector({ subjectKeys: store });
    await expect(
      p.sealSagaInput('order', 's-1', { customer: { email: 'a@b.test' } }),
    ).rejects.toBeInstanceOf(DataSubjectMissingError);
    expect(store.size).toBe(0);
  });

  it('a key store that fails is SubjectKeyStoreUnavailableError (retry later), not unreadable data', async () => {
    const down: SubjectKeyStore = {
      ...new InMemorySubjectKeyStore(),
      findBySubject: () => Promise.reject(new Error('connection refused')),
      findById: () => Promise.reject(new Error('connection refused')),
      insertIfAbsent: () => Promise.reject(new Error('connection refused')),
      erase: () => Promise.reject(new Error('connection refused')),
      wrappedWithOther: () => Promise.reject(new Error('connection refused')),
      rewrap: () => Promise.reject(new Error('connection refused')),
    };
    const p = protector({ subjectKeys: down });
    await expect(p.sealSagaInput('order', 's-1', input)).rejects.toBeInstanceOf(
      SubjectKeyStoreUnavailableError,
    );
  });

  it('seals step results per rule (whole value), reading the subject from the input lazily', async () => {
    const p = protector();
    let asked = 0;
    const result = { authorization: 'auth-42' };
    const sealed = await p.sealStepResult('order', 's-1', 'charge', result, () => {
      asked++;
      return Promise.resolve(input);
    });
    expect(asked).toBe(1);
    expect(isSealedValue(sealed)).toBe(true);
    await expect(p.open(sealed, ProtectedLocation.stepResult('s-1', 'charge'))).resolves.toEqual(
      result,
    );
    // A step without a rule is stored as it is, and the input is not read.
    const other = await p.sealStepResult('order', 's-1', 'ship', result, () => {
      asked++;
      return Promise.resolve(input);
    });
    expect(other).toBe(result);
    expect(asked).toBe(1);
  });

  it('seals a message and marks it; a consumer without keys refuses it as no-keys', async () => {
    const p = protector();
    const m = {
      id: 'm-1',
      type: 'note.added',
      payload: { text: 'secret note' },
      headers: {} as Record<string, string>,
    };
    const sealed = await p.sealMessage(m);
    expect(sealed.headers[ENCRYPTED_HEADER]).toBe('v1');
    expect(JSON.stringify(sealed.payload)).not.toContain('secret note');
    await expect(p.openMessage(sealed)).resolves.toEqual({ ...sealed, payload: m.payload });
    expect(() => refuseEncryptedWithoutKeys(sealed)).toThrow(DataUnreadableError);
    expect(() => refuseEncryptedWithoutKeys(m)).not.toThrow();
    // An unknown type is left alone.
    const other = { ...m, type: 'other' };
    await expect(p.sealMessage(other)).resolves.toBe(other);
    // Moved to another message id: tampered.
    expect(await reasonOf(() => p.openMessage({ ...sealed, id: 'm-2' }))).toBe('tampered');
  });

  it('reseal rewrites master-key envelopes of retired keys with the active key, and leaves the rest', async () => {
    const old = protector({}, encryptionKeys({ active: 'k1', keys: { k1, k2 } }));
    const now = protector({}, encryptionKeys({ active: 'k2', keys: { k1, k2 } }));
    const where = ProtectedLocation.sagaInput('s-1');
    const sealed = await old.sealSagaInput('plain', 's-1', { secret: 'x' });
    const first = now.reseal(sealed, where);
    expect(first.changed).toBe(1);
    expect(findSealed(first.value)[0]!.sealed.key).toBe('m:k2');
    await expect(now.open(first.value, where)).resolves.toEqual({ secret: 'x' });
    expect(now.reseal(first.value, where).changed).toBe(0);
    // Subject-key envelopes stay (their keys are rewrapped instead).
    const bySubject = await now.sealSagaInput('order', 's-1', input);
    expect(now.reseal(bySubject, where).changed).toBe(0);
  });

  it('finds envelopes in deeply nested, untrusted values without recursion', async () => {
    const p = protector();
    const where = ProtectedLocation.message('m-1', 'note.added');
    const sealed = await p.sealMessage({
      id: 'm-1',
      type: 'note.added',
      payload: 'deep secret',
      headers: {},
    });
    let deep: JsonValue = sealed.payload;
    for (let i = 0; i < 20_000; i++) deep = [deep];
    const found = findSealed(deep);
    expect(found).toHaveLength(1);
    expect(found[0]!.path).toHaveLength(20_000);
    // A wide, deep value without any envelope is returned as it is.
    let plain: JsonValue = { leaf: true };
    for (let i = 0; i < 20_000; i++) plain = { next: plain, i };
    await expect(p.open(plain, where)).resolves.toBe(plain);
  });
});

describe('validateDataProtection', () => {
  const keys = encryptionKeys({ active: 'k1', keys: { k1 } });
  const invalid = (option: unknown): string => {
    try {
      validateDataProtection(option);
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidOptionsError);
      return (error as InvalidOptionsError).option;
    }
    throw new Error('expected InvalidOptionsError');
  };

  it('is undefined when absent, parsed when valid', () => {
    expect(validateDataProtection(undefined)).toBeUndefined();
    const settings = validateDataProtection({
      keys,
      sagas: { s: { input: ['$.a.b'], results: { r: ['$'] }, subject: 'a.id' } },
    })!;
    expect(settings.sagas.get('s')!.input!.fields).toEqual([['a', 'b']]);
    expect(settings.sagas.get('s')!.results.get('r')!.fields).toEqual([[]]);
  });

  it('names the option and the fix for each mistake', () => {
    expect(invalid('yes')).toBe('dataProtection');
    expect(invalid({})).toBe('dataProtection.keys');
    expect(invalid({ keys: { activeKeyId: () => 'x', key: () => randomBytes(16) } })).toBe(
      'dataProtection.keys',
    );
    expect(invalid({ keys, subjectKeyCacheMs: -1 })).toBe('dataProtection.subjectKeyCacheMs');
    expect(invalid({ keys, sagas: { s: { input: [] } } })).toBe('dataProtection.sagas["s"].input');
    expect(invalid({ keys, sagas: { s: { input: ['a..b'] } } })).toBe(
      'dataProtection.sagas["s"].input[0]',
    );
    expect(invalid({ keys, sagas: { s: { subject: 'a.*' } } })).toBe(
      'dataProtection.sagas["s"].subject',
    );
    expect(invalid({ keys, messages: { t: { fields: 'email' } } })).toBe(
      'dataProtection.messages["t"].fields',
    );
  });
});
