import { randomBytes, randomUUID } from 'node:crypto';
import { InMemorySubjectKeyStore } from '../../testing/in-memory-subject-key-store';
import { InvalidOptionsError } from '../errors';
import type { JsonValue } from '../json';
import type { KeyProvider } from '../ports/key-provider';
import type {
  EnvelopeFilter,
  ProtectedDataStore,
  ProtectedRow,
  ProtectedSource,
} from '../ports/protected-data-store';
import { signingKeys } from '../signing/signing-keys';
import { validateDataProtection } from './data-protection-options';
import { DataProtector, ProtectedLocation } from './data-protector';
import { encryptionKeys } from './encryption-keys';
import { findSealed } from './field-paths';
import { KeyRotation } from './key-rotation';
import { sealValue } from './sealed-value';

const k1 = randomBytes(32);
const k2 = randomBytes(32);

/** Saga inputs in memory; `interfere` lets a "concurrent writer" change a row before a replace. */
class InputsStore implements ProtectedDataStore {
  readonly rows = new Map<string, JsonValue>();
  interfere: ((id: string) => void) | undefined;

  scan(
    source: ProtectedSource,
    filter: EnvelopeFilter,
    after: readonly string[] | null,
    limit: number,
  ): Promise<ProtectedRow[]> {
    if (source !== 'saga-input' || filter.kind !== 'master-other-than') return Promise.resolve([]);
    const rows = [...this.rows.entries()]
      .filter(([id]) => after === null || id > after[0]!)
      .filter(([, v]) => findSealed(v).some((f) => f.sealed.key !== `m:${filter.activeKeyId}`))
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .slice(0, limit);
    return Promise.resolve(
      rows.map(([id, value]) => ({ source, key: [id], value, version: JSON.stringify(value) })),
    );
  }

  replace(row: ProtectedRow, value: JsonValue): Promise<boolean> {
    const id = row.key[0]!;
    this.interfere?.(id);
    if (JSON.stringify(this.rows.get(id)) !== row.version) return Promise.resolve(false);
    this.rows.set(id, value);
    return Promise.resolve(true);
  }

  sagas(): Promise<never[]> {
    return Promise.resolve([]);
  }
}

function protector(keys: KeyProvider): DataProtector {
  return new DataProtector(
    validateDataProtection({ keys, subjectKeys: new InMemorySubjectKeyStore() })!,
  );
}

function sealedInput(id: string, key: Buffer, keyId: string, text: string): JsonValue {
  return {
    email: sealValue(
      text,
      key,
      `m:${keyId}`,
      ProtectedLocation.sagaInput(id),
      '/email',
    ) as unknown as JsonValue,
  };
}

describe('KeyRotation', () => {
  it('retries rows a concurrent writer changed first, in a later pass', async () => {
    const store = new InputsStore();
    const ids = Array.from({ length: 5 }, () => randomUUID());
    for (const id of ids) store.rows.set(id, sealedInput(id, k1, 'k1', `mail ${id}`));
    // The first replace of the first row loses to a writer that rewrites it (still under k1).
    let interfered = false;
    store.interfere = (id) => {
      if (interfered || id !== [...ids].sort()[0]) return;
      interfered = true;
      store.rows.set(id, sealedInput(id, k1, 'k1', 'changed meanwhile'));
    };
    const p = protector(encryptionKeys({ active: 'k2', keys: { k1, k2 } }));
    const report = await new KeyRotation(p, store, { batchSize: 2 }).rotate();
    expect(interfered).toBe(true);
    expect(report.sources['saga-input']).toMatchObject({ rewritten: 5, conflicts: 0 });
    expect(report.complete).toBe(true);
    const onlyK2 = protector(encryptionKeys({ active: 'k2', keys: { k2 } }));
    const first = [...ids].sort()[0]!;
    expect(await onlyK2.open(store.rows.get(first)!, ProtectedLocation.sagaInput(first))).toEqual({
      email: 'changed meanwhile',
    });
  });

  it('leaves what it cannot decrypt, reports it, and is not complete', async () => {
    const store = new InputsStore();
    const id = randomUUID();
    const lost = randomBytes(32);
    store.rows.set(id, sealedInput(id, lost, 'k0', 'x'));
    const report = await new KeyRotation(
      protector(encryptionKeys({ active: 'k2', keys: { k1, k2 } })),
      store,
    ).rotate();
    expect(report.sources['saga-input']).toMatchObject({ scanned: 1, rewritten: 0, unreadable: 1 });
    expect(report.complete).toBe(false);
  });

  it('dry run counts without writing', async () => {
    const store = new InputsStore();
    const id = randomUUID();
    const before = sealedInput(id, k1, 'k1', 'x');
    store.rows.set(id, before);
    const report = await new KeyRotation(
      protector(encryptionKeys({ active: 'k2', keys: { k1, k2 } })),
      store,
      { dryRun: true, signingKeys: signingKeys({ active: 's', keys: { s: randomBytes(32) } }) },
    ).rotate();
    expect(report.sources['saga-input']).toMatchObject({ rewritten: 1, envelopes: 1 });
    expect(store.rows.get(id)).toEqual(before);
  });

  it('refuses a batch size out of range', () => {
    const p = protector(encryptionKeys({ active: 'k1', keys: { k1 } }));
    expect(() => new KeyRotation(p, new InputsStore(), { batchSize: 0 })).toThrow(
      InvalidOptionsError,
    );
  });
});
