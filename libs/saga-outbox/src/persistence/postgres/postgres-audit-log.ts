import type { DataSource, EntityManager } from 'typeorm';
import {
  AuditChainVerifier,
  CHAIN_START,
  sealAuditEntries,
  type AuditChainAnchor,
  type AuditChainBreak,
  type SealedAuditEntry,
} from '../../core/audit/audit-chain';
import type { AuditSealStore } from '../../core/audit/audit-sealer';
import { InvalidOptionsError } from '../../core/errors';
import { assertJsonSerializable, type JsonValue } from '../../core/json';
import type { KeyProvider } from '../../core/ports/key-provider';
import * as q from './audit-queries.sql';
import { auditTables, type AuditTables } from './audit-tables';
import { runStatement } from './run-statement';
import { sagaSchema } from './schema-name';

/** Where PostgresAuditLog's tables are, and the key it seals with. */
export interface PostgresAuditLogOptions {
  /** Schema holding Sage's tables (default `sage`). */
  schema?: string;
  /** Seal with HMAC-SHA256 under the provider's active key (and verify with its keys). */
  hmacKeys?: KeyProvider;
}

/** The result of walking the chain (`sage audit verify`). */
export interface AuditVerification {
  ok: boolean;
  /** The first break, when the chain is broken. */
  break?: AuditChainBreak;
  /** Entries checked and found intact. */
  verified: number;
  /** Where the walk started: the latest retention checkpoint, or the beginning. */
  from: AuditChainAnchor;
  /** The last intact entry: record it elsewhere to detect a later rewrite of the whole chain. */
  head: AuditChainAnchor;
  /** Entries written but not sealed yet (not covered by the chain until the sealer runs). */
  pending: number;
}

/**
 * The audit log on PostgreSQL (docs/audit-log.md): sealing pending entries into the hash chain,
 * verifying it, pruning it behind a checkpoint. SQL: audit-queries.sql.ts.
 */
export class PostgresAuditLog implements AuditSealStore {
  readonly tables: AuditTables;
  private readonly hmacKeys: KeyProvider | undefined;

  constructor(
    private readonly dataSource: DataSource,
    options: PostgresAuditLogOptions = {},
  ) {
    this.tables = auditTables(sagaSchema(options.schema));
    this.hmacKeys = options.hmacKeys;
  }

  /**
   * Seals up to `limit` committed pending entries, in one transaction: the sealer lock (or null
   * when another process holds it), the chain head, the pending rows taken in id order, the new
   * entries appended. A failure rolls all of it back: the pending rows are still there.
   */
  sealBatch(limit: number): Promise<number | null> {
    return this.dataSource.transaction(async (manager) => {
      const runner = manager.queryRunner!;
      const [lock] = await runStatement(runner, q.tryLockAuditSealer());
      if (!lock?.ok) return null;
      const [head] = await runStatement(runner, q.selectAuditChainHead(this.tables));
      const rows = await runStatement(runner, q.takeAuditPendingBatch(this.tables, { limit }));
      if (!rows.length) return 0;
      rows.sort((x, y) => (BigInt(x.id) < BigInt(y.id) ? -1 : 1));
      const anchor = head ? { seq: Number(head.seq), hash: head.hash } : CHAIN_START;
      const sealed = sealAuditEntries(
        anchor,
        rows.map((r) => toContent(r)),
        this.hmacKeys,
      );
      await runStatement(
        runner,
        q.insertAuditLogEntries(this.tables, {
          seqs: sealed.map((e) => String(e.seq)),
          ats: sealed.map((e) => e.at),
          actors: sealed.map((e) => e.actor),
          actions: sealed.map((e) => e.action),
          targetTypes: sealed.map((e) => e.targetType),
          targetIds: sealed.map((e) => e.targetId),
          details: sealed.map((e) => JSON.stringify(e.detail)),
          prevHashes: sealed.map((e) => e.prevHash),
          hashes: sealed.map((e) => e.hash),
          hmacKeyIds: sealed.map((e) => e.hmacKeyId),
        }),
      );
      return sealed.length;
    });
  }

  /** Seals everything pending now (batch after batch); null when another sealer holds the lock. */
  async sealAll(batchSize = 500): Promise<number | null> {
    let total = 0;
    for (;;) {
      const n = await this.sealBatch(batchSize);
      if (n === null) return total > 0 ? total : null;
      total += n;
      if (n < batchSize) return total;
    }
  }

  /**
   * Walks the chain from the latest checkpoint in seq order, `batchSize` entries per query (memory
   * stays bounded), and stops at the first break. Keys for HMAC entries: `keys`, else the
   * provider this log seals with.
   */
  async verify(
    options: { batchSize?: number; keys?: KeyProvider; requireHmac?: boolean } = {},
  ): Promise<AuditVerification> {
    const batchSize = options.batchSize ?? 1000;
    const [checkpoint] = await this.query(q.selectLatestAuditCheckpoint(this.tables));
    const from = checkpoint ? { seq: Number(checkpoint.seq), hash: checkpoint.hash } : CHAIN_START;
    const verifier = new AuditChainVerifier(from, {
      keys: options.keys ?? this.hmacKeys,
      requireHmac: options.requireHmac,
    });
    const [pendingRow] = await this.query(q.countAuditPending(this.tables));
    const pending = pendingRow?.pending ?? 0;
    const done = (): AuditVerification => ({
      ok: verifier.result === undefined,
      ...(verifier.result ? { break: verifier.result } : {}),
      verified: verifier.verified,
      from,
      head: verifier.head,
      pending,
    });
    if (checkpoint) {
      const [below] = await this.query(
        q.selectAuditEntryBelow(this.tables, { seq: checkpoint.seq }),
      );
      if (below?.seq != null) {
        const seq = Number(below.seq);
        // An entry at or below the checkpoint: pruning deleted those, so it was added since.
        return {
          ...done(),
          ok: false,
          break: {
            kind: 'inserted',
            seq,
            message: `entry ${seq} sits at or below the retention checkpoint (entry ${from.seq}): inserted`,
          },
        };
      }
    }
    let after = String(from.seq);
    for (;;) {
      const rows = await this.query(q.selectAuditLogPage(this.tables, { after, limit: batchSize }));
      if (!rows.length) break;
      if (verifier.push(rows.map(toEntry))) break;
      if (rows.length < batchSize) break;
      after = rows[rows.length - 1]!.seq;
    }
    return done();
  }

  /**
   * Retention: verifies the chain first (a broken chain is never covered by a checkpoint: the
   * evidence stays), then deletes entries older than `keepAfter` behind a checkpoint. Returns the
   * checkpoint's seq, or null when nothing was old enough.
   */
  async prune(keepAfter: Date): Promise<number | null> {
    const check = await this.verify();
    if (!check.ok)
      throw new Error(
        `the audit chain is broken (${check.break!.message}); not pruning it: run "sage audit verify" and investigate`,
      );
    const [row] = await this.query(q.pruneAuditLog(this.tables, { keepAfter }));
    return row?.checkpoint == null ? null : Number(row.checkpoint);
  }

  /** Entries written but not sealed yet. */
  async pendingCount(): Promise<number> {
    const [row] = await this.query(q.countAuditPending(this.tables));
    return row?.pending ?? 0;
  }

  private async query<Row>(statement: q.Statement<Row>): Promise<Row[]> {
    const runner = this.dataSource.createQueryRunner();
    try {
      return await runStatement(runner, statement);
    } finally {
      await runner.release();
    }
  }
}

/** What a caller records with recordAudit (Sage's own triggers record saga, step and dead-letter changes). */
export interface AuditRecord {
  /** What happened, e.g. `keys.rotated`, `subject.erased`: lower-case words separated by dots. */
  action: string;
  /** What it happened to, e.g. `key` / `subject`. */
  targetType: string;
  /** Its id. For a data subject, an id that is not personal data itself (or a hash of it). */
  targetId: string;
  /** Ids, names, counts, statuses: never payloads or personal data. Default `{}`. */
  detail?: JsonValue;
  /** Who, when not the transaction's `sage.actor` (or the database role). */
  actor?: string;
}

/** `word.word[.word...]`, checked without a backtracking regex. */
const isActionName = (action: string): boolean =>
  action.length <= 128 &&
  action.includes('.') &&
  action.split('.').every((word) => /^[a-z][a-z0-9_]*$/.test(word));

/**
 * Records an audit entry in `manager`'s transaction (an `audit_pending` row, sealed into the chain
 * by the sealer): it commits or rolls back with the change it records. Throws InvalidOptionsError
 * for a malformed action or a non-JSON detail, before writing anything.
 */
export async function recordAudit(
  manager: EntityManager,
  entry: AuditRecord,
  options: { schema?: string } = {},
): Promise<void> {
  if (typeof entry.action !== 'string' || !isActionName(entry.action))
    throw new InvalidOptionsError(
      'audit action',
      `${JSON.stringify(entry.action)} is not an action name: use dot-separated lower-case words, e.g. "keys.rotated".`,
    );
  for (const [field, value] of [
    ['targetType', entry.targetType],
    ['targetId', entry.targetId],
  ] as const)
    if (typeof value !== 'string' || value === '' || value.length > 512)
      throw new InvalidOptionsError(
        `audit ${field}`,
        'must be a non-empty string of at most 512 characters.',
      );
  const detail = entry.detail ?? {};
  assertJsonSerializable(detail, 'audit detail');
  const runner = manager.queryRunner;
  if (!runner?.isTransactionActive)
    throw new InvalidOptionsError(
      'manager',
      'recordAudit needs an EntityManager inside a transaction (dataSource.transaction(...)), so the entry commits with the change it records.',
    );
  await runStatement(
    runner,
    q.insertAuditPending(auditTables(sagaSchema(options.schema)), {
      action: entry.action,
      targetType: entry.targetType,
      targetId: entry.targetId,
      detail: JSON.stringify(detail),
      actor: entry.actor ?? null,
    }),
  );
}

function toContent(row: q.AuditRow) {
  return {
    at: row.at,
    actor: row.actor,
    action: row.action,
    targetType: row.target_type,
    targetId: row.target_id,
    detail: row.detail as JsonValue,
  };
}

function toEntry(row: q.AuditLogRow): SealedAuditEntry {
  return {
    ...toContent(row),
    seq: Number(row.seq),
    prevHash: row.prev_hash,
    hash: row.hash,
    hmacKeyId: row.hmac_key_id,
  };
}
