import pg from 'pg';

/** Statements sent to PostgreSQL, by leading keyword (BEGIN, SELECT, INSERT, UPDATE, WITH, COMMIT...). */
export type StatementCounts = Record<string, number>;

const counts: StatementCounts = {};
/** The same counts per `application_name` of the sending client, so one system can be isolated. */
const byApplication = new Map<string, StatementCounts>();
let installed = false;

/**
 * Counts every statement any `pg` Client in this process sends — TypeORM's postgres driver and the
 * raw Pool both go through `Client.prototype.query` — so the round trips per saga of the engine and
 * of the raw ceiling are measured, not assumed. One increment per call: negligible next to a round
 * trip, and it applies to both sides alike.
 */
export function installQueryCounter(): void {
  if (installed) return;
  installed = true;
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function countedQuery(this: unknown, ...args: unknown[]): unknown {
    const first = args[0];
    const text =
      typeof first === 'string'
        ? first
        : typeof first === 'object' && first !== null && 'text' in first
          ? String((first as { text: unknown }).text)
          : '';
    const kind = keyword(text);
    counts[kind] = (counts[kind] ?? 0) + 1;
    const app =
      (this as { connectionParameters?: { application_name?: string } }).connectionParameters
        ?.application_name ?? '';
    let appCounts = byApplication.get(app);
    if (!appCounts) byApplication.set(app, (appCounts = {}));
    appCounts[kind] = (appCounts[kind] ?? 0) + 1;
    return original.apply(this, args);
  };
}

/** Every statement so far, or only those sent by clients with this `application_name`. */
export function snapshotCounts(applicationName?: string): StatementCounts {
  if (applicationName === undefined) return { ...counts };
  return { ...byApplication.get(applicationName) };
}

/** `after - before`, per keyword, divided by `per` (e.g. sagas run), dropping zeros. */
export function countsDelta(
  before: StatementCounts,
  after: StatementCounts,
  per = 1,
): StatementCounts {
  const out: StatementCounts = {};
  for (const [kind, n] of Object.entries(after)) {
    const d = (n - (before[kind] ?? 0)) / per;
    if (d !== 0) out[kind] = Math.round(d * 100) / 100;
  }
  return out;
}

export function totalOf(c: StatementCounts): number {
  return Math.round(Object.values(c).reduce((a, b) => a + b, 0) * 100) / 100;
}

function keyword(sql: string): string {
  const word = /^\s*([A-Za-z]+)/.exec(sql)?.[1]?.toUpperCase() ?? 'OTHER';
  return word === 'START' ? 'BEGIN' : word; // TypeORM says START TRANSACTION, the raw side BEGIN
}
