import { createHash, createHmac } from 'node:crypto';
import { canonicalJson } from '../canonical-json';
import type { JsonValue } from '../json';
import type { KeyProvider } from '../ports/key-provider';

/**
 * The audit log's hash chain, framework-free: how an entry's hash is computed (sealing) and how a
 * run of entries is checked (verification). The SQL that stores them is in
 * persistence/postgres/audit-queries.sql.ts; see docs/audit-log.md.
 *
 * Each sealed entry's `hash` is SHA-256 (or, with an HMAC key, HMAC-SHA256) over the canonical JSON
 * of `{ seq, at, actor, action, target: { type, id }, detail, prev_hash }`, where `prev_hash` is
 * the previous entry's hash (GENESIS_HASH for seq 1, or a checkpoint's hash after pruning). `seq`
 * is part of the hashed text, so an entry moved to another place no longer matches its hash.
 */

/** `prev_hash` of the very first entry: 64 zeros. */
export const GENESIS_HASH = '0'.repeat(64);

/** What an audited change records (the part a writer gives; `seq` and hashes come with sealing). */
export interface AuditEntryContent {
  /**
   * When the change happened, as text: UTC ISO 8601 with microseconds (`2026-12-07T10:00:00.123456Z`),
   * exactly as the database renders it, so the hashed text does not depend on the JS Date's precision.
   */
  at: string;
  /** Who: the operator (`sage.actor`, e.g. from the CLI's `--operator`) or the database role. */
  actor: string;
  /** What, e.g. `saga.started`, `step.completed`, `outbox.replayed`, `keys.rotated`. */
  action: string;
  targetType: string;
  targetId: string;
  /** Ids, names, statuses, attempts: never payloads or personal data. */
  detail: JsonValue;
}

/** An entry of the sealed chain. */
export interface SealedAuditEntry extends AuditEntryContent {
  /** Position in the chain: 1, 2, 3... with no gap. */
  seq: number;
  prevHash: string;
  hash: string;
  /** The HMAC key the hash was computed with; null for plain SHA-256. */
  hmacKeyId: string | null;
}

/** Where a run of entries starts: the beginning of the log, or the latest retention checkpoint. */
export interface AuditChainAnchor {
  /** The seq of the entry just before the first one expected (0 at the beginning). */
  seq: number;
  /** That entry's hash (GENESIS_HASH at the beginning). */
  hash: string;
}

export const CHAIN_START: AuditChainAnchor = Object.freeze({ seq: 0, hash: GENESIS_HASH });

/** The text that is hashed for an entry. */
export function auditHashInput(
  entry: AuditEntryContent & { seq: number; prevHash: string },
): string {
  return canonicalJson({
    seq: entry.seq,
    at: entry.at,
    actor: entry.actor,
    action: entry.action,
    target: { type: entry.targetType, id: entry.targetId },
    detail: entry.detail,
    prev_hash: entry.prevHash,
  });
}

/** SHA-256, or HMAC-SHA256 with `key`, of the entry's canonical text, as lower-case hex. */
export function auditEntryHash(
  entry: AuditEntryContent & { seq: number; prevHash: string },
  key?: Uint8Array,
): string {
  const text = auditHashInput(entry);
  return (key ? createHmac('sha256', key) : createHash('sha256')).update(text).digest('hex');
}

/**
 * Chains `pending` (in the order to seal them) after `head`: seq head.seq+1, +2... each hashed
 * with the previous one's hash, with the active HMAC key of `keys` when given.
 */
export function sealAuditEntries(
  head: AuditChainAnchor,
  pending: readonly AuditEntryContent[],
  keys?: KeyProvider,
): SealedAuditEntry[] {
  const keyId = keys?.activeKeyId() ?? null;
  const key = keyId === null ? undefined : keys?.key(keyId);
  if (keyId !== null && !key)
    throw new Error(`the audit HMAC key provider has no key for its active key id "${keyId}"`);
  const sealed: SealedAuditEntry[] = [];
  let prev = head;
  for (const content of pending) {
    const seq = prev.seq + 1;
    const entry = { ...content, seq, prevHash: prev.hash };
    const hash = auditEntryHash(entry, key);
    sealed.push({ ...entry, hash, hmacKeyId: keyId });
    prev = { seq, hash };
  }
  return sealed;
}

/**
 * How the chain is broken at the first bad entry:
 * - `deleted`: entries are missing (a gap in seq); `seq` is the first missing one.
 * - `edited`: the entry no longer matches its hash (its content, seq or hash was changed).
 * - `inserted`: the entry is not linked to the one before it (`prev_hash`), or sits below the
 *   retention checkpoint: a row added by hand, or the chain rebuilt from here.
 * - `reordered`: the entry's content and hash belong to another seq (rows swapped or moved).
 * - `downgraded`: an entry without HMAC after HMAC entries (or none at all where HMAC is required).
 * - `unknown-key`: the entry names an HMAC key the verifier does not hold.
 */
export type AuditBreakKind =
  'deleted' | 'edited' | 'inserted' | 'reordered' | 'downgraded' | 'unknown-key';

export interface AuditChainBreak {
  kind: AuditBreakKind;
  /** The entry named: the first missing seq for `deleted`, else the bad entry's seq. */
  seq: number;
  /** One line for an operator. */
  message: string;
}

export interface AuditVerifierOptions {
  /** Keys for entries sealed with HMAC (by their key id). */
  keys?: KeyProvider;
  /** Refuse entries without HMAC anywhere (default: only after the first HMAC entry). */
  requireHmac?: boolean;
}

/**
 * Checks a chain fed to it in seq order, batch by batch (memory stays bounded: only the last entry
 * is kept). `push` returns the first break found; after a break the verifier stops checking.
 */
export class AuditChainVerifier {
  private prev: AuditChainAnchor;
  private sawHmac = false;
  private broken: AuditChainBreak | undefined;
  /** Entries checked and found intact. */
  verified = 0;

  constructor(
    anchor: AuditChainAnchor = CHAIN_START,
    private readonly options: AuditVerifierOptions = {},
  ) {
    this.prev = anchor;
  }

  /** The last intact entry (the anchor when none was checked yet). */
  get head(): AuditChainAnchor {
    return this.prev;
  }

  get result(): AuditChainBreak | undefined {
    return this.broken;
  }

  /** Checks `entries` (the next ones in seq order); returns the first break, if any. */
  push(entries: readonly SealedAuditEntry[]): AuditChainBreak | undefined {
    for (const entry of entries) {
      if (this.broken) break;
      this.broken = this.check(entry);
      if (!this.broken) {
        this.verified++;
        this.prev = { seq: entry.seq, hash: entry.hash };
        if (entry.hmacKeyId !== null) this.sawHmac = true;
      }
    }
    return this.broken;
  }

  private check(entry: SealedAuditEntry): AuditChainBreak | undefined {
    const expected = this.prev.seq + 1;
    if (entry.seq > expected)
      return {
        kind: 'deleted',
        seq: expected,
        message: `entry ${expected} is missing${entry.seq > expected + 1 ? ` (entries ${expected} to ${entry.seq - 1})` : ''}: deleted`,
      };
    if (entry.seq < expected)
      return {
        kind: 'inserted',
        seq: entry.seq,
        message: `entry ${entry.seq} comes after entry ${this.prev.seq}: out of sequence (inserted)`,
      };
    let key: Uint8Array | undefined;
    if (entry.hmacKeyId === null) {
      if (this.options.requireHmac || this.sawHmac)
        return {
          kind: 'downgraded',
          seq: entry.seq,
          message: `entry ${entry.seq} has no HMAC ${this.sawHmac ? 'although earlier entries have one' : 'and HMAC is required'}: rewritten without the key`,
        };
    } else {
      key = this.options.keys?.key(entry.hmacKeyId);
      if (!key)
        return {
          kind: 'unknown-key',
          seq: entry.seq,
          message: `entry ${entry.seq} is sealed with HMAC key "${entry.hmacKeyId}", which the verifier does not hold: give that key to verify it`,
        };
    }
    const hashMatches = auditEntryHash(entry, key) === entry.hash;
    const linked = entry.prevHash === this.prev.hash;
    if (hashMatches && linked) return undefined;
    if (hashMatches)
      return {
        kind: 'inserted',
        seq: entry.seq,
        message: `entry ${entry.seq} is not linked to entry ${this.prev.seq} (prev_hash differs): inserted, or the chain was rewritten from here`,
      };
    // Content and hash that match another position: the row was moved (two rows swapped).
    for (const seq of [entry.seq - 1, entry.seq + 1])
      if (seq > 0 && auditEntryHash({ ...entry, seq }, key) === entry.hash)
        return {
          kind: 'reordered',
          seq: entry.seq,
          message: `entry ${entry.seq} holds the content of entry ${seq}: reordered`,
        };
    return linked
      ? {
          kind: 'edited',
          seq: entry.seq,
          message: `entry ${entry.seq} does not match its hash: edited`,
        }
      : {
          kind: 'inserted',
          seq: entry.seq,
          message: `entry ${entry.seq} neither matches its hash nor links to entry ${this.prev.seq}: inserted or edited`,
        };
  }
}
