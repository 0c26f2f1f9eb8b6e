import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidOptionsError } from '../errors';
import { MessageRefusedError } from '../inbox/message-refused';
import {
  SIGNATURE_HEADER,
  SIGNATURE_KEY_HEADER,
  signMessage,
  signedText,
  verifyMessageSignature,
  type SignableMessage,
} from './message-signature';
import { signingKeys, signingKeysFromEnv } from './signing-keys';
import { signatureCheck, validateSigningOptions } from './signing-options';

// Signing keys made for this run: no key material is written in the repository.
const OLD = randomBytes(32).toString('base64');
const NEW = Buffer.alloc(32, 7);
const keys = signingKeys({ active: 'k2', keys: { k1: OLD, k2: NEW } });
const oldOnly = signingKeys({ active: 'k1', keys: { k1: OLD } });

const message: SignableMessage = {
  id: '0190a5d2-0000-7000-8000-000000000001',
  type: 'sage.saga.reply',
  destination: 'orders.saga-replies',
  key: 'saga-1',
  payload: { result: { authorizationId: 'a-1', amounts: [1, 2.5] } },
  headers: {
    'sage-saga-id': 'saga-1',
    'sage-step': 'authorize-payment',
    'sage-attempt': '1',
    'sage-idempotency-key': 'saga-1:authorize-payment',
    'sage-reply-outcome': 'success',
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  },
};

function refusal(m: SignableMessage, with_ = keys): string {
  try {
    verifyMessageSignature(m, with_);
  } catch (error) {
    expect(error).toBeInstanceOf(MessageRefusedError);
    return (error as MessageRefusedError).reason;
  }
  return 'verified';
}

describe('message signatures (HMAC-SHA256 v1)', () => {
  const signed = signMessage(message, keys);

  it('signs with the active key: v1=<base64 of 32 bytes> and the key id', () => {
    expect(signed.headers[SIGNATURE_KEY_HEADER]).toBe('k2');
    expect(signed.headers[SIGNATURE_HEADER]).toMatch(/^v1=[A-Za-z0-9+/]{43}=$/);
    expect(refusal(signed)).toBe('verified');
    // Re-signing replaces the signature rather than adding a second one.
    expect(signMessage(signed, keys).headers).toEqual(signed.headers);
  });

  it('covers id, type, destination, key, payload and sage-* headers', () => {
    const tampered: SignableMessage[] = [
      { ...signed, id: '0190a5d2-0000-7000-8000-000000000002' },
      { ...signed, type: 'other.type' },
      { ...signed, destination: 'elsewhere' },
      { ...signed, key: 'saga-2' },
      { ...signed, key: null },
      { ...signed, payload: { result: { authorizationId: 'a-2', amounts: [1, 2.5] } } },
      { ...signed, payload: null },
      { ...signed, headers: { ...signed.headers, 'sage-attempt': '2' } },
      { ...signed, headers: { ...signed.headers, 'sage-reply-outcome': 'failure' } },
      { ...signed, headers: { ...signed.headers, 'sage-reply-to': 'attacker.replies' } },
    ];
    for (const m of tampered) expect(refusal(m)).toBe('signature-invalid');
  });

  it('ignores what transports add or change: key order, header case, non-sage headers', () => {
    const reordered: SignableMessage = {
      ...signed,
      payload: { result: { amounts: [1, 2.5], authorizationId: 'a-1' } },
      headers: {
        ...Object.fromEntries(Object.entries(signed.headers).map(([k, v]) => [k.toUpperCase(), v])),
        'ce-source': 'somewhere',
        traceparent: '00-11111111111111111111111111111111-2222222222222222-01',
        'sage-dead-letter-reason': 'max-deliveries',
      },
    };
    expect(refusal(reordered)).toBe('verified');
  });

  it('refuses unsigned, unknown-key and malformed signatures, each with its reason', () => {
    expect(refusal(message)).toBe('signature-missing');
    const noKeyId = { ...signed.headers };
    delete noKeyId[SIGNATURE_KEY_HEADER];
    expect(refusal({ ...signed, headers: noKeyId })).toBe('signature-missing');
    expect(
      refusal({ ...signed, headers: { ...signed.headers, [SIGNATURE_KEY_HEADER]: 'k9' } }),
    ).toBe('signature-key-unknown');
    for (const bad of [
      '',
      'v1=',
      'v2=' + signed.headers[SIGNATURE_HEADER]!.slice(3),
      'v1=AAAA',
      'garbage',
    ])
      expect(refusal({ ...signed, headers: { ...signed.headers, [SIGNATURE_HEADER]: bad } })).toBe(
        'signature-invalid',
      );
    // Same key id, another secret: a forger who guessed the id.
    const forger = signingKeys({ active: 'k2', keys: { k2: Buffer.alloc(32, 9) } });
    expect(refusal(signMessage(message, forger))).toBe('signature-invalid');
  });

  it('rotation: a message signed with the retired key still verifies; new ones use the active key', () => {
    const old = signMessage(message, oldOnly);
    expect(old.headers[SIGNATURE_KEY_HEADER]).toBe('k1');
    expect(refusal(old, keys)).toBe('verified');
    expect(refusal(signed, oldOnly)).toBe('signature-key-unknown');
  });

  it('never puts a secret or the expected signature in an error', () => {
    const texts: string[] = [];
    const capture = (f: () => unknown) => {
      try {
        f();
      } catch (error) {
        texts.push((error as Error).message);
      }
    };
    const wrong = { ...signed, payload: 1 };
    capture(() => verifyMessageSignature(wrong, keys));
    capture(() => signingKeys({ active: 'k1', keys: { k1: 'short-secret-value' } }));
    capture(() => signingKeys({ active: 'k3', keys: { k1: OLD } }));
    capture(() =>
      signingKeysFromEnv({ SAGE_SIGNING_KEYS: `k1=${Buffer.from('tiny').toString('base64')}` }),
    );
    expect(texts).toHaveLength(4);
    const expected = signMessage(wrong, keys).headers[SIGNATURE_HEADER]!.slice(3);
    for (const text of texts) {
      for (const secret of [OLD, 'short-secret-value', NEW.toString('base64'), expected, 'dGlueQ'])
        expect(text).not.toContain(secret);
    }
  });

  it('the signed text is canonical JSON of exactly the signed parts', () => {
    expect(JSON.parse(signedText(signed))).toEqual({
      v: 'v1',
      id: message.id,
      type: message.type,
      destination: message.destination,
      key: message.key,
      payload: message.payload,
      headers: {
        'sage-saga-id': 'saga-1',
        'sage-step': 'authorize-payment',
        'sage-attempt': '1',
        'sage-idempotency-key': 'saga-1:authorize-payment',
        'sage-reply-outcome': 'success',
      },
    });
  });
});

describe('signing keys', () => {
  it('refuses short secrets, bad ids, no keys and an active id it does not hold', () => {
    expect(() => signingKeys({ active: 'a', keys: { a: Buffer.alloc(31) } })).toThrow(/31 bytes/);
    expect(() => signingKeys({ active: 'a b', keys: { 'a b': NEW } })).toThrow(InvalidOptionsError);
    expect(() => signingKeys({ active: 'a', keys: {} })).toThrow(/no key/);
    expect(() => signingKeys({ active: 'b', keys: { a: NEW } })).toThrow(
      /not among the keys \(a\)/,
    );
    expect(() => signingKeys({ active: 'a', keys: { a: 'base64:***' } })).toThrow(/base64/);
  });

  it('from the environment: id=base64 pairs, the last one active unless SAGE_SIGNING_ACTIVE_KEY says', () => {
    const k1 = Buffer.alloc(32, 1).toString('base64');
    const k2 = Buffer.alloc(48, 2).toString('base64');
    expect(signingKeysFromEnv({})).toBeUndefined();
    const fromEnv = signingKeysFromEnv({ SAGE_SIGNING_KEYS: `k1=${k1}, k2=${k2}` })!;
    expect(fromEnv.activeKeyId()).toBe('k2');
    expect(Buffer.from(fromEnv.key('k1')!)).toEqual(Buffer.alloc(32, 1));
    expect(
      signingKeysFromEnv({
        SAGE_SIGNING_KEYS: `k1=${k1},k2=${k2}`,
        SAGE_SIGNING_ACTIVE_KEY: 'k1',
      })!.activeKeyId(),
    ).toBe('k1');
    expect(() => signingKeysFromEnv({ SAGE_SIGNING_KEYS: k1 })).toThrow(/entry 1 is not "id=/);
    expect(() => signingKeysFromEnv({ SAGE_SIGNING_KEYS: k1 })).not.toThrow(k1.slice(0, 20));
  });

  it('from a mounted file (SAGE_SIGNING_KEYS_FILE), one pair a line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sage-keys-'));
    try {
      const file = join(dir, 'keys');
      writeFileSync(
        file,
        `a=${Buffer.alloc(32, 3).toString('base64')}\nb=${Buffer.alloc(32, 4).toString('base64')}\n`,
      );
      const provider = signingKeysFromEnv({ SAGE_SIGNING_KEYS_FILE: file })!;
      expect(provider.activeKeyId()).toBe('b');
      expect(provider.key('a')).toBeDefined();
      expect(() => signingKeysFromEnv({ SAGE_SIGNING_KEYS_FILE: join(dir, 'missing') })).toThrow(
        /SAGE_SIGNING_KEYS_FILE.*ENOENT/,
      );
      expect(() =>
        signingKeysFromEnv({ SAGE_SIGNING_KEYS_FILE: file, SAGE_SIGNING_KEYS: 'x=y' }),
      ).toThrow(/only one/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the signing option: validated; verification only when required', () => {
    expect(validateSigningOptions(undefined)).toBeUndefined();
    expect(() => validateSigningOptions({ keys: {} })).toThrow(/KeyProvider/);
    expect(() => validateSigningOptions({ keys, require: 'yes' })).toThrow(/signing.require/);
    expect(() =>
      validateSigningOptions({ keys: { activeKeyId: () => 'x', key: () => undefined } }),
    ).toThrow(/does not hold/);
    expect(signatureCheck({ keys })).toBeUndefined();
    const check = signatureCheck({ keys, require: true })!;
    expect(() => check({ ...message, time: new Date(), deliveryAttempt: 1 })).toThrow(
      /^signature-missing: /,
    );
  });
});

it('a sage-* header twice, names differing only in case, is refused even if the signature matches one of them', () => {
  const signed = signMessage(message, keys);
  // The signed value last, so the signed text is unchanged; a reader might take the forged one.
  const { 'sage-attempt': attempt, ...rest } = signed.headers;
  const doubled = {
    ...signed,
    headers: { ...rest, 'SAGE-ATTEMPT': '7', 'sage-attempt': attempt! },
  };
  expect(refusal(doubled)).toBe('signature-invalid');
  expect(() => verifyMessageSignature(doubled, keys)).toThrow(
    /carries the header "sage-attempt" twice/,
  );
});
