/**
 * Chaos: the relay's database is killed (kill -9 of the postmaster) while the relay runs, stays
 * down while the relay keeps failing, and comes back. Then a message written right after the
 * restart must be published within a second, and the outage must not flood the log.
 *
 * The database is a private server (test/support/private-postgres.ts): other tests share the
 * usual one and must not see it go away.
 */
import { runMigrationsLocked } from '@sage/saga-outbox';
import { InMemoryBroker } from '../../libs/saga-outbox/src/brokers/memory/in-memory-broker';
import { OutboxRelay } from '../../libs/saga-outbox/src/core/outbox/outbox-relay';
import type { SageLogger } from '../../libs/saga-outbox/src/core/ports/logger';
import { waitUntil } from '@sage/saga-outbox/testing';
import { openOutboxTestContext, type OutboxTestContext } from '@test/support/outbox-test-support';
import { PrivatePostgres } from '@test/support/private-postgres';

jest.setTimeout(120_000);

/** What the relay promises: publishing resumes within this long of the database coming back. */
const RESUME_WITHIN_MS = 1000;
/** The outage lasts until the relay has failed this many ticks in a row. */
const FAILED_TICKS = 10;

interface LogLine {
  level: keyof SageLogger;
  message: string;
  fields: Record<string, unknown>;
  at: number;
}

let pg: PrivatePostgres;
let ctx: OutboxTestContext;
let relay: OutboxRelay | undefined;

beforeAll(async () => {
  pg = await PrivatePostgres.start();
  ctx = await openOutboxTestContext(pg.connection, 4);
  await runMigrationsLocked(ctx.dataSource);
});
afterAll(async () => {
  await relay?.stop();
  await ctx?.close();
  await pg?.destroy();
});

it('kill -9 of PostgreSQL: the relay publishes within a second of its return, logging the outage once', async () => {
  const lines: LogLine[] = [];
  const record =
    (level: keyof SageLogger) =>
    (message: string, fields: Record<string, unknown> = {}): void => {
      lines.push({ level, message, fields, at: Date.now() });
    };
  const logger: SageLogger = {
    debug: record('debug'),
    info: record('info'),
    warn: record('warn'),
    error: record('error'),
  };
  const published = new Map<string, number>();
  relay = new OutboxRelay({ store: ctx.store, broker: new InMemoryBroker(), logger }); // defaults
  relay.onEvent((e) => {
    if (e.type === 'outbox.published') published.set(e.messageId, e.at);
  });
  const message = { destination: 'outage.test', type: 'probe', key: null, payload: {} };
  relay.start();
  const [before] = await ctx.commit(message);
  await waitUntil(() => published.has(before!), 'the message written before the outage');

  await pg.kill();
  const downAt = Date.now();
  await waitUntil(
    () => relay!.stats.loop.consecutiveErrors >= FAILED_TICKS,
    `${FAILED_TICKS} failed relay ticks in a row`,
    30_000,
  );
  const failedTicks = relay.stats.loop.consecutiveErrors;
  await pg.resume();
  const upAt = Date.now();
  const outageMs = upAt - downAt;

  // The writer's pool may hand out a connection that died with the server: retry the commit.
  let after: string | undefined;
  await waitUntil(async () => {
    try {
      [after] = await ctx.commit(message);
      return true;
    } catch {
      return false;
    }
  }, 'a commit after the restart');
  const committedAt = Date.now();
  await waitUntil(() => published.has(after!), 'the message written after the restart', 30_000);
  const publishedAt = published.get(after!)!;

  const measured = `outage ${outageMs} ms (${failedTicks} failed ticks); committed ${committedAt - upAt} ms after the restart, published ${publishedAt - committedAt} ms after the commit`;
  // The measurement rides along so that a failure shows it.
  expect({ measured, withinBound: publishedAt - committedAt < RESUME_WITHIN_MS }).toEqual({
    measured,
    withinBound: true,
  });

  // One error line when the outage began (with the cause), none per failed tick (those are at
  // debug); one line when it ended, with the count. (The loop repeats the error line at most every
  // 10 s; the outage was shorter.)
  const during = lines.filter((l) => l.at >= downAt && l.at <= upAt);
  expect(outageMs).toBeLessThan(10_000);
  expect(during.filter((l) => l.level === 'error')).toEqual([
    expect.objectContaining({
      fields: expect.objectContaining({
        event: 'outbox-relay.error',
        consecutiveErrors: 1,
        error: expect.any(String) as unknown,
      }) as unknown,
    }),
  ]);
  expect(
    during.filter((l) => l.fields.event === 'outbox-relay.error' && l.level === 'debug').length,
  ).toBeGreaterThanOrEqual(FAILED_TICKS - 1);
  // Logged when the tick that published ends.
  const recoveredLine = (): LogLine[] =>
    lines.filter((l) => l.fields.event === 'outbox-relay.recovered');
  await waitUntil(() => recoveredLine().length > 0, 'the recovery line');
  expect(recoveredLine()).toEqual([
    expect.objectContaining({
      level: 'info',
      fields: expect.objectContaining({
        failedTicks: expect.any(Number) as unknown,
        failingForMs: expect.any(Number) as unknown,
      }) as unknown,
    }),
  ]);
  expect(recoveredLine()[0]!.fields.failedTicks).toBeGreaterThanOrEqual(failedTicks);
});
