import pg from 'pg';

/** What the clients of one `application_name` sent to PostgreSQL. */
export interface StatementTally {
  /** Every statement, BEGIN and COMMIT included. */
  statements: number;
  /** Explicit transactions committed (COMMIT sent). */
  commits: number;
  /** Statements other than SELECT sent outside an explicit transaction: each commits on its own. */
  autocommitWrites: number;
  /** Per leading keyword (START counts as BEGIN). */
  byKeyword: Record<string, number>;
}

/** Write transactions the tally committed: explicit COMMITs plus autocommitted writes. */
export function transactionsOf(t: StatementTally): number {
  return t.commits + t.autocommitWrites;
}

/**
 * Counts what the node-postgres clients of this process whose `application_name` is `application`
 * send, statement by statement (TypeORM's postgres driver goes through `Client.prototype.query`
 * too), keeping track of which client is inside an explicit transaction. Deterministic: it counts
 * round trips, never time. `reset()` starts a new tally; `stop()` unhooks it.
 */
export function countStatements(application: string): {
  tally(): StatementTally;
  reset(): void;
  stop(): void;
} {
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  const inTransaction = new WeakSet<object>();
  let tally = empty();
  proto.query = function counted(this: object, ...args: unknown[]): unknown {
    const app = (this as { connectionParameters?: { application_name?: string } })
      .connectionParameters?.application_name;
    if (app === application) {
      const first = args[0];
      const text =
        typeof first === 'string'
          ? first
          : typeof first === 'object' && first !== null && 'text' in first
            ? String((first as { text: unknown }).text)
            : '';
      const word = /^\s*([A-Za-z]+)/.exec(text)?.[1]?.toUpperCase() ?? 'OTHER';
      const kind = word === 'START' ? 'BEGIN' : word;
      tally.statements++;
      tally.byKeyword[kind] = (tally.byKeyword[kind] ?? 0) + 1;
      if (kind === 'BEGIN') inTransaction.add(this);
      else if (kind === 'COMMIT' || kind === 'ROLLBACK') {
        if (kind === 'COMMIT') tally.commits++;
        inTransaction.delete(this);
      } else if (!inTransaction.has(this) && kind !== 'SELECT') tally.autocommitWrites++;
    }
    return original.apply(this, args);
  };
  return {
    tally: () => ({ ...tally, byKeyword: { ...tally.byKeyword } }),
    reset: () => {
      tally = empty();
    },
    stop: () => {
      proto.query = original;
    },
  };
}

function empty(): StatementTally {
  return { statements: 0, commits: 0, autocommitWrites: 0, byKeyword: {} };
}
