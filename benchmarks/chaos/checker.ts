/**
 * The verdict of a chaos run, from the databases alone (after every process has stopped):
 *
 * - lost: committed in service A (`chaos.a_message`) and never effected in service B;
 * - duplicate effects: a message effected more than once (the inbox's promise: must be 0);
 * - phantom effects: an effect of a message service A never committed;
 * - reordered: per key, an effect applied after an effect with a higher sequence number
 *   (`seq < prev_max_seq` as the handler recorded it under the key's row lock);
 * - sagas: not terminal (failure), ended otherwise than designed, or with a number of step
 *   messages that does not match their outcome (a local step's emit committed twice or never);
 * - recovery: per fault, from its end to the next relay publish (`outbox_message.sent_at`) and to
 *   the next effect (`b_effect.applied_at`); for a relay kill also until every row claimed at the
 *   kill was sent (the dead relay's claims wait for their lease).
 */
import type pg from 'pg';
import { summarise, type LatencySummary } from '../harness/stats';
import type { FaultRecord, FaultType } from './faults';

export interface DeliveryStats {
  /** Deliveries handed to the inbox (all service B processes). */
  deliveries: number;
  /** Deliveries of an id the same process had seen before (a broker or relay duplicate). */
  redeliveries: number;
  /** Skipped by the inbox as already handled. */
  inboxDuplicates: number;
  /** Handler attempts that failed and were rolled back (the database was down, mostly). */
  handlerFailures: number;
  inboxDeadLettered: number;
}

export interface FaultRecovery extends FaultRecord {
  /** endedAt − startedAt. */
  downMs: number | null;
  /** From the end of the fault to the next outbox row marked sent. */
  nextPublishMs: number | null;
  /** From the end of the fault to the next effect committed in service B. */
  nextEffectMs: number | null;
  /** relay-kill: from the kill until every row claimed at that moment was sent. */
  claimsSentAfterMs?: number | null;
}

export interface RecoverySummary {
  count: number;
  downMs: { p50: number; max: number } | null;
  nextPublishMs: { p50: number; max: number } | null;
  nextEffectMs: { p50: number; max: number } | null;
  claimsSentAfterMs?: { p50: number; max: number } | null;
}

export interface Verdict {
  ok: boolean;
  failures: string[];
  produced: { total: number; orders: number; saga: number };
  effected: number;
  lost: number;
  lostBy: Record<string, number>;
  duplicateEffects: { messages: number; extraEffects: number };
  phantomEffects: number;
  reordered: number;
  /**
   * Where each reorder happened: `published` when the relay published the later message first
   * (its `sent_at` is earlier: the outbox broke the key's order), `consumed` when it was published
   * in order and service B applied it out of order.
   */
  reorderedBy: { published: number; consumed: number };
  /** First effects of a key applied with a gap before them (a later message first, or a loss). */
  gapsAtApply: number;
  outbox: Record<string, number>;
  inbox: { deadLetters: number; stillFailing: number };
  sagas: {
    byStatus: Record<string, number>;
    nonTerminal: number;
    unexpectedOutcome: number;
    messageMismatches: number;
  };
  samples: {
    lost: { id: string; key: string; seq: number; outbox: string }[];
    duplicates: { id: string; effects: number }[];
    reordered: {
      key: string;
      seq: number;
      afterSeq: number;
      consumer: string;
      /** sent_at and outbox txid of this message and of the one applied before it. */
      sentAt?: string | null;
      afterSentAt?: string | null;
      txid?: string | null;
      afterTxid?: string | null;
    }[];
    sagas: { id: string; status: string; failAt: string | null; messages: number }[];
  };
}

export interface Throughput {
  /** Messages committed per second, first to last commit. */
  producedPerSec: number;
  productionMs: number;
  /** Distinct messages effected per second, first to last effect. */
  effectedPerSec: number;
  consumptionMs: number;
  /** Commit in service A → effect in service B, per message (first effect). */
  commitToEffectMs: LatencySummary;
}

const TERMINAL = new Set(['completed', 'compensated', 'failed']);
const SAMPLES = 10;

export async function checkRun(
  a: pg.Client,
  b: pg.Client,
  extraFailures: string[],
  /** The run ended at its deadline, still draining: unfinished, not (yet) lost. */
  cutShort = false,
): Promise<{ verdict: Verdict; throughput: Throughput }> {
  const produced = await a.query<{
    id: string;
    key: string;
    seq: number;
    origin: string;
    committed: number;
  }>(
    `SELECT message_id::text AS id, key, seq, origin,
            (extract(epoch FROM committed_at) * 1000)::float8 AS committed
     FROM chaos.a_message`,
  );
  const effects = await b.query<{
    id: string;
    key: string;
    seq: number;
    prev: number;
    consumer: string;
    applied: number;
  }>(
    `SELECT message_id AS id, key, seq, prev_max_seq AS prev, consumer,
            (extract(epoch FROM applied_at) * 1000)::float8 AS applied
     FROM chaos.b_effect ORDER BY key, apply_no`,
  );
  const outboxStatus = await a.query<{ id: string; status: string }>(
    `SELECT id::text, status FROM sage.outbox_message WHERE status <> 'sent'`,
  );
  const outboxCounts = await a.query<{ status: string; n: number }>(
    `SELECT status, count(*)::int AS n FROM sage.outbox_message GROUP BY status`,
  );
  const inboxDead = await b.query<{ id: string }>(
    `SELECT message_id AS id FROM sage.inbox_message WHERE status = 'dead_letter'`,
  );
  const stillFailing = await b.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM sage.inbox_failure`,
  );
  const sagas = await a.query<{
    id: string;
    status: string;
    failAt: string | null;
    messages: number;
  }>(
    `SELECT i.id::text, i.status, i.input->>'failAt' AS "failAt",
            (SELECT count(*) FROM chaos.a_message m WHERE m.key = i.id::text)::int AS messages
     FROM sage.saga_instance i`,
  );

  const byId = new Map(produced.rows.map((r) => [r.id, r]));
  const effectCount = new Map<string, number>();
  const firstEffect = new Map<string, number>();
  let phantom = 0;
  let reordered = 0;
  const reorders: { key: string; seq: number; after: number }[] = [];
  let gaps = 0;
  const samples: Verdict['samples'] = { lost: [], duplicates: [], reordered: [], sagas: [] };
  for (const e of effects.rows) {
    const seen = effectCount.get(e.id) ?? 0;
    effectCount.set(e.id, seen + 1);
    if (seen > 0) continue; // a duplicate effect: counted below, not as a reorder
    firstEffect.set(e.id, e.applied);
    if (!byId.has(e.id)) phantom++;
    if (e.seq < e.prev) {
      reordered++;
      reorders.push({ key: e.key, seq: e.seq, after: e.prev });
      if (samples.reordered.length < SAMPLES)
        samples.reordered.push({ key: e.key, seq: e.seq, afterSeq: e.prev, consumer: e.consumer });
    } else if (e.seq > e.prev + 1) gaps++;
  }
  let dupMessages = 0;
  let dupExtra = 0;
  for (const [id, n] of effectCount) {
    if (n <= 1) continue;
    dupMessages++;
    dupExtra += n - 1;
    if (samples.duplicates.length < SAMPLES) samples.duplicates.push({ id, effects: n });
  }
  const unsent = new Map(outboxStatus.rows.map((r) => [r.id, r.status]));
  const deadInInbox = new Set(inboxDead.rows.map((r) => r.id));
  const lostBy: Record<string, number> = {};
  let lost = 0;
  for (const m of produced.rows) {
    if (effectCount.has(m.id)) continue;
    lost++;
    const where = deadInInbox.has(m.id)
      ? 'inbox dead letter'
      : unsent.has(m.id)
        ? `outbox ${unsent.get(m.id)}`
        : 'sent, never effected';
    lostBy[where] = (lostBy[where] ?? 0) + 1;
    if (samples.lost.length < SAMPLES)
      samples.lost.push({ id: m.id, key: m.key, seq: m.seq, outbox: where });
  }

  // Publish order of each reordered pair: who broke the key's order, the relay or the consumer?
  const reorderedBy = { published: 0, consumed: 0 };
  if (reorders.length) {
    const { rows } = await a.query<{
      key: string;
      seq: number;
      sent: string | null;
      sentMs: number | null;
      txid: string | null;
    }>(
      `SELECT m.key, m.seq, o.sent_at::text AS sent, o.txid::text AS txid,
              (extract(epoch FROM o.sent_at) * 1000)::float8 AS "sentMs"
       FROM unnest($1::text[], $2::int[]) AS p (key, seq)
       JOIN chaos.a_message m ON m.key = p.key AND m.seq = p.seq
       LEFT JOIN sage.outbox_message o ON o.id = m.message_id`,
      [reorders.flatMap((r) => [r.key, r.key]), reorders.flatMap((r) => [r.seq, r.after])],
    );
    const sent = new Map(rows.map((r) => [`${r.key}#${r.seq}`, r.sent]));
    const sentMs = new Map(rows.map((r) => [`${r.key}#${r.seq}`, r.sentMs]));
    const txid = new Map(rows.map((r) => [`${r.key}#${r.seq}`, r.txid]));
    for (const r of reorders) {
      const mine = sentMs.get(`${r.key}#${r.seq}`) ?? null;
      const theirs = sentMs.get(`${r.key}#${r.after}`) ?? null;
      const publishedFirst = mine !== null && theirs !== null && mine < theirs;
      if (publishedFirst) reorderedBy.consumed++;
      else reorderedBy.published++;
    }
    for (const sample of samples.reordered) {
      sample.sentAt = sent.get(`${sample.key}#${sample.seq}`) ?? null;
      sample.afterSentAt = sent.get(`${sample.key}#${sample.afterSeq}`) ?? null;
      sample.txid = txid.get(`${sample.key}#${sample.seq}`) ?? null;
      sample.afterTxid = txid.get(`${sample.key}#${sample.afterSeq}`) ?? null;
    }
  }

  const byStatus: Record<string, number> = {};
  let nonTerminal = 0;
  let unexpected = 0;
  let mismatches = 0;
  for (const s of sagas.rows) {
    byStatus[s.status] = (byStatus[s.status] ?? 0) + 1;
    if (!TERMINAL.has(s.status)) nonTerminal++;
    const designed = s.failAt ? 'compensated' : 'completed';
    if (TERMINAL.has(s.status) && s.status !== designed) unexpected++;
    // completed: reserved, charged, confirmed; compensated: reserved, released.
    const expected = s.status === 'completed' ? 3 : s.status === 'compensated' ? 2 : undefined;
    const bad = expected !== undefined && s.messages !== expected;
    if (bad) mismatches++;
    if ((bad || !TERMINAL.has(s.status)) && samples.sagas.length < SAMPLES) samples.sagas.push(s);
  }

  const failures = [...extraFailures];
  if (lost)
    failures.push(
      cutShort
        ? `${lost} message(s) not effected when the deadline ended the run (${describe(lostBy)})`
        : `${lost} message(s) lost (${describe(lostBy)})`,
    );
  if (dupMessages)
    failures.push(`${dupMessages} message(s) effected more than once (${dupExtra} extra effects)`);
  if (phantom) failures.push(`${phantom} effect(s) of messages service A never committed`);
  if (reordered)
    failures.push(
      `${reordered} effect(s) applied out of per-key order (${reorderedBy.published} published out of order by the relays, ${reorderedBy.consumed} applied out of order by the consumer)`,
    );
  if (nonTerminal) failures.push(`${nonTerminal} saga(s) not terminal`);
  if (mismatches)
    failures.push(`${mismatches} saga(s) whose step messages do not match their outcome`);

  const commits = produced.rows.map((r) => r.committed);
  const applies = [...firstEffect.values()];
  const latencies = new Float64Array(firstEffect.size);
  let i = 0;
  for (const [id, applied] of firstEffect) {
    const m = byId.get(id);
    if (m) latencies[i++] = applied - m.committed;
  }
  const span = (xs: number[]): number => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of xs) {
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    return xs.length > 1 ? hi - lo : 0;
  };
  const productionMs = span(commits);
  const consumptionMs = span(applies);
  const orders = produced.rows.filter((r) => r.origin === 'order').length;
  return {
    verdict: {
      ok: failures.length === 0,
      failures,
      produced: { total: produced.rows.length, orders, saga: produced.rows.length - orders },
      effected: firstEffect.size,
      lost,
      lostBy,
      duplicateEffects: { messages: dupMessages, extraEffects: dupExtra },
      phantomEffects: phantom,
      reordered,
      reorderedBy,
      gapsAtApply: gaps,
      outbox: Object.fromEntries(outboxCounts.rows.map((r) => [r.status, r.n])),
      inbox: { deadLetters: inboxDead.rows.length, stillFailing: stillFailing.rows[0]?.n ?? 0 },
      sagas: {
        byStatus,
        nonTerminal,
        unexpectedOutcome: unexpected,
        messageMismatches: mismatches,
      },
      samples,
    },
    throughput: {
      producedPerSec: productionMs ? (produced.rows.length / productionMs) * 1000 : 0,
      productionMs,
      effectedPerSec: consumptionMs ? (firstEffect.size / consumptionMs) * 1000 : 0,
      consumptionMs,
      commitToEffectMs: summarise(latencies.subarray(0, i)),
    },
  };
}

/** Per fault: outage, time to the next publish and the next effect after it ended. */
export async function faultRecoveries(
  a: pg.Client,
  b: pg.Client,
  records: readonly FaultRecord[],
  claimedAtKill: ReadonlyMap<number, string[]>,
): Promise<FaultRecovery[]> {
  const out: FaultRecovery[] = [];
  const after = async (client: pg.Client, sql: string, at: number): Promise<number | null> => {
    const { rows } = await client.query<{ t: number | null }>(sql, [at / 1000]);
    const t = rows[0]?.t;
    return t === null || t === undefined ? null : Math.max(0, Math.round(t - at));
  };
  for (const r of records) {
    const recovery: FaultRecovery = {
      ...r,
      downMs: r.endedAt === null ? null : r.endedAt - r.startedAt,
      nextPublishMs: null,
      nextEffectMs: null,
    };
    if (r.endedAt !== null) {
      recovery.nextPublishMs = await after(
        a,
        `SELECT (extract(epoch FROM min(sent_at)) * 1000)::float8 AS t
         FROM sage.outbox_message WHERE sent_at > to_timestamp($1)`,
        r.endedAt,
      );
      recovery.nextEffectMs = await after(
        b,
        `SELECT (extract(epoch FROM min(applied_at)) * 1000)::float8 AS t
         FROM chaos.b_effect WHERE applied_at > to_timestamp($1)`,
        r.endedAt,
      );
    }
    const claimed = claimedAtKill.get(r.n);
    if (claimed?.length) {
      const { rows } = await a.query<{ t: number | null; unsent: number }>(
        `SELECT (extract(epoch FROM max(sent_at)) * 1000)::float8 AS t,
                count(*) FILTER (WHERE status <> 'sent')::int AS unsent
         FROM sage.outbox_message WHERE id = ANY($1::uuid[])`,
        [claimed],
      );
      const row = rows[0];
      recovery.claimsSentAfterMs =
        row && row.unsent === 0 && row.t !== null ? Math.round(row.t - r.startedAt) : null;
    }
    out.push(recovery);
  }
  return out;
}

export function summariseRecoveries(
  recoveries: readonly FaultRecovery[],
): Partial<Record<FaultType, RecoverySummary>> {
  const out: Partial<Record<FaultType, RecoverySummary>> = {};
  const stat = (xs: (number | null | undefined)[]): { p50: number; max: number } | null => {
    const v = xs.filter((x): x is number => typeof x === 'number');
    if (!v.length) return null;
    const s = summarise(Float64Array.from(v));
    return { p50: s.p50, max: s.max };
  };
  for (const type of new Set(recoveries.map((r) => r.type))) {
    const rs = recoveries.filter((r) => r.type === type);
    out[type] = {
      count: rs.length,
      downMs: stat(rs.map((r) => r.downMs)),
      nextPublishMs: stat(rs.map((r) => r.nextPublishMs)),
      nextEffectMs: stat(rs.map((r) => r.nextEffectMs)),
      ...(type === 'relay-kill'
        ? { claimsSentAfterMs: stat(rs.map((r) => r.claimsSentAfterMs)) }
        : {}),
    };
  }
  return out;
}

function describe(counts: Record<string, number>): string {
  return Object.entries(counts)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
}
