import { randomBytes } from 'node:crypto';
import { signingKeys } from '../signing/signing-keys';
import {
  AuditChainVerifier,
  CHAIN_START,
  GENESIS_HASH,
  auditEntryHash,
  sealAuditEntries,
  type AuditEntryContent,
  type SealedAuditEntry,
} from './audit-chain';

const content = (n: number): AuditEntryContent => ({
  at: `2026-12-07T10:00:00.${String(n).padStart(6, '0')}Z`,
  actor: 'sage_runtime',
  action: 'step.completed',
  targetType: 'saga_step',
  targetId: `saga-${n}/reserve`,
  detail: { attempts: n, step: 'reserve', to: 'completed' },
});

const chain = (n: number): SealedAuditEntry[] =>
  sealAuditEntries(
    CHAIN_START,
    Array.from({ length: n }, (_, i) => content(i + 1)),
  );

const verify = (entries: readonly SealedAuditEntry[], verifier = new AuditChainVerifier()) =>
  verifier.push(entries);

describe('audit chain', () => {
  it('seals entries with contiguous seq, each linked to the previous hash', () => {
    const entries = chain(3);
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(entries[0]!.prevHash).toBe(GENESIS_HASH);
    expect(entries[1]!.prevHash).toBe(entries[0]!.hash);
    expect(entries[2]!.prevHash).toBe(entries[1]!.hash);
    expect(entries.every((e) => /^[0-9a-f]{64}$/.test(e.hash) && e.hmacKeyId === null)).toBe(true);
    expect(verify(entries)).toBeUndefined();
  });

  it('hashes the canonical encoding: key order of the detail does not matter', () => {
    const base = { ...content(1), seq: 1, prevHash: GENESIS_HASH };
    expect(auditEntryHash({ ...base, detail: { a: 1, b: 2 } })).toBe(
      auditEntryHash({ ...base, detail: { b: 2, a: 1 } }),
    );
    expect(auditEntryHash({ ...base, detail: { a: 1 } })).not.toBe(
      auditEntryHash({ ...base, detail: { a: 2 } }),
    );
  });

  it('verifies batch by batch and continues from a checkpoint', () => {
    const entries = chain(6);
    const verifier = new AuditChainVerifier();
    expect(verifier.push(entries.slice(0, 2))).toBeUndefined();
    expect(verifier.push(entries.slice(2))).toBeUndefined();
    expect(verifier.verified).toBe(6);
    expect(verifier.head).toEqual({ seq: 6, hash: entries[5]!.hash });
    const fromCheckpoint = new AuditChainVerifier({ seq: 3, hash: entries[2]!.hash });
    expect(fromCheckpoint.push(entries.slice(3))).toBeUndefined();
    // A wrong checkpoint hash breaks the first entry after it.
    expect(new AuditChainVerifier({ seq: 3, hash: GENESIS_HASH }).push(entries.slice(3))).toEqual(
      expect.objectContaining({ kind: 'inserted', seq: 4 }),
    );
  });

  it('names an edited entry', () => {
    const entries = chain(5);
    entries[2] = { ...entries[2]!, detail: { attempts: 99 } };
    expect(verify(entries)).toEqual(expect.objectContaining({ kind: 'edited', seq: 3 }));
  });

  it('names the first deleted entry', () => {
    const entries = chain(5);
    entries.splice(1, 2);
    expect(verify(entries)).toEqual(expect.objectContaining({ kind: 'deleted', seq: 2 }));
    expect(verify(chain(3).slice(1))).toEqual(expect.objectContaining({ kind: 'deleted', seq: 1 }));
  });

  it('names an inserted entry, forged with a wrong hash or with a valid hash but no link', () => {
    const entries = chain(3);
    const forged = { ...content(9), seq: 4, prevHash: GENESIS_HASH };
    const withValidHash = { ...forged, hash: auditEntryHash(forged), hmacKeyId: null };
    expect(verify([...entries, withValidHash])).toEqual(
      expect.objectContaining({ kind: 'inserted', seq: 4 }),
    );
    expect(verify([...entries, { ...withValidHash, hash: 'f'.repeat(64) }])).toEqual(
      expect.objectContaining({ kind: 'inserted', seq: 4 }),
    );
    // Rows out of order (e.g. a duplicate seq fed twice).
    expect(verify([...entries, entries[1]!])).toEqual(
      expect.objectContaining({ kind: 'inserted', seq: 2 }),
    );
  });

  it('names reordered entries (two rows swapped with their hashes)', () => {
    const entries = chain(4);
    const [b, c] = [entries[1]!, entries[2]!];
    entries[1] = { ...c, seq: 2 };
    entries[2] = { ...b, seq: 3 };
    expect(verify(entries)).toEqual(expect.objectContaining({ kind: 'reordered', seq: 2 }));
  });

  it('with an HMAC key: entries name the key, verify needs it, and a keyless rewrite fails', () => {
    const keys = signingKeys({ keys: { k1: randomBytes(32) }, active: 'k1' });
    const entries = sealAuditEntries(CHAIN_START, [content(1), content(2)], keys);
    expect(entries.map((e) => e.hmacKeyId)).toEqual(['k1', 'k1']);
    expect(verify(entries, new AuditChainVerifier(CHAIN_START, { keys }))).toBeUndefined();
    expect(verify(entries)).toEqual(expect.objectContaining({ kind: 'unknown-key', seq: 1 }));
    const other = signingKeys({ keys: { k1: randomBytes(32) }, active: 'k1' });
    expect(verify(entries, new AuditChainVerifier(CHAIN_START, { keys: other }))).toEqual(
      expect.objectContaining({ kind: 'edited', seq: 1 }),
    );
    // Rewritten as plain SHA-256 by someone without the key: refused when HMAC is required,
    // and after any HMAC entry.
    const plain = chain(2);
    expect(verify(plain, new AuditChainVerifier(CHAIN_START, { keys, requireHmac: true }))).toEqual(
      expect.objectContaining({ kind: 'downgraded', seq: 1 }),
    );
    const mixed = [
      entries[0]!,
      ...sealAuditEntries({ seq: 1, hash: entries[0]!.hash }, [content(2)]),
    ];
    expect(verify(mixed, new AuditChainVerifier(CHAIN_START, { keys }))).toEqual(
      expect.objectContaining({ kind: 'downgraded', seq: 2 }),
    );
  });
});
