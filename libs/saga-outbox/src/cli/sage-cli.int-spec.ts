/**
 * The `sage` CLI against real PostgreSQL, run as child processes (as operators run it): real rows
 * written through the library (sagas in every live state, outbox and inbox dead letters), then the
 * commands' --json output, exit codes and their effects on the rows.
 *
 * Starting ts-node costs ~3 s per process, so most commands run in one batch process
 * (test/support/sage-cli-batch.ts: the same runCli the sage bin calls, one connection per command);
 * the bin (src/bin/sage.ts) itself is spawned for the first migrate check (exit 1) and a usage error (exit 2).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { DataSource, EntityManager } from 'typeorm';
import {
  createSagaDataSource,
  OutboxPublisher,
  PostgresInboxStore,
  PostgresOutboxStore,
  PostgresSagaStore,
  StepFailure,
  type SagaRecord,
} from '@sage/saga-outbox';
import {
  createTestDatabase,
  dataSourceOptions,
  withClient,
  type TestDatabase,
} from '@test/support/pg';
import type { CliRun } from '@test/support/sage-cli-batch';

jest.setTimeout(120_000);

const ROOT = join(__dirname, '..', '..', '..', '..');
const MAIN = join(ROOT, 'libs/saga-outbox/src/bin/sage.ts');
const BATCH = join(ROOT, 'test/support/sage-cli-batch.ts');

function databaseUrl(db: TestDatabase): string {
  const c = db.connection;
  return `postgres://${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@${c.host}:${c.port}/${c.database}`;
}

/** Runs `script` under ts-node like `npm run sage` does; resolves with its exit code and output. */
function runNode(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const childEnv = { ...process.env, ...env };
    delete childEnv.NODE_OPTIONS; // jest's --experimental-vm-modules is not the CLI's business
    const child = spawn(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register', script, ...args],
      { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ argv: args, code: code ?? -1, stdout, stderr }));
  });
}

async function runBatch(calls: string[][], env: NodeJS.ProcessEnv): Promise<CliRun[]> {
  const run = await runNode(BATCH, [JSON.stringify(calls)], env);
  if (run.code !== 0) throw new Error(`batch failed (${run.code}): ${run.stderr}`);
  return JSON.parse(run.stdout) as CliRun[];
}

const parse = <T>(run: CliRun | undefined): T => {
  if (!run) throw new Error('missing run');
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${run.code}): ${run.stdout}\nstderr: ${run.stderr}`);
  }
};

describe('sage CLI on PostgreSQL', () => {
  let db: TestDatabase;
  let dataSource: DataSource;
  let sagas: PostgresSagaStore;
  let outbox: PostgresOutboxStore;
  const ids = {
    waiting: randomUUID(),
    failed: randomUUID(),
    unowned: randomUUID(),
    completed: randomUUID(),
    other: randomUUID(),
  };
  let deadLetters: { pay1: string; pay2: string; email: string };

  beforeAll(async () => {
    db = await createTestDatabase({ migrated: true });
    dataSource = await createSagaDataSource(
      dataSourceOptions(db.name, { poolSize: 4 }),
    ).initialize();
    sagas = new PostgresSagaStore(dataSource);
    outbox = new PostgresOutboxStore(dataSource);
    await seedSagas();
    deadLetters = await seedOutboxDeadLetters();
    const inbox = new PostgresInboxStore(dataSource);
    for (const messageId of ['m-1', 'm-2'])
      await inbox.recordFailure({
        consumer: 'payments.order-placed',
        messageId,
        error: 'TypeError: amount is undefined',
        maxAttempts: 1,
        message: { orderId: messageId },
      });
  });

  afterAll(async () => {
    if (dataSource?.isInitialized) await dataSource.destroy();
    await db?.drop();
  });

  const saga = (id: string, name: string, owner: string | null) =>
    sagas.create({
      id,
      name,
      version: 'v1',
      input: { orderId: id },
      idempotencyKey: null,
      stepNames: ['reserve', 'charge'],
      owner,
      leaseMs: 600_000,
      timeoutMs: null,
    });

  /** One saga per state an operator meets, each put there by the store's own transitions. */
  async function seedSagas(): Promise<void> {
    // waiting: the remote step `reserve` sent its command and awaits the reply (10 min deadline).
    await saga(ids.waiting, 'order-placement', 'w1');
    const waiting = { sagaId: ids.waiting, owner: 'w1' };
    await sagas.runStepTransaction(waiting, 'reserve', 'forward', 1, () =>
      Promise.resolve({ result: null, value: null, awaitReply: { timeoutMs: 600_000 } }),
    );
    await expect(sagas.park(waiting, 0)).resolves.toBe('parked');
    // failed: `charge` failed for good and the saga was parked as failed with the reason.
    await saga(ids.failed, 'order-placement', 'w1');
    const failed = { sagaId: ids.failed, owner: 'w1' };
    await sagas.recordStepFailure(
      failed,
      StepFailure.final('charge', 'forward', 3, 'card declined'),
    );
    await sagas.transition(failed, ['running'], 'failed', {
      error: 'compensation of reserve kept failing',
      failedStep: 'charge',
    });
    // running, never owned: due for the recovery loop, which nobody runs here → stalled.
    await saga(ids.unowned, 'order-placement', null);
    await saga(ids.completed, 'order-placement', 'w1');
    await sagas.transition({ sagaId: ids.completed, owner: 'w1' }, ['running'], 'completed');
    await saga(ids.other, 'refund', 'w2');
  }

  /** Three dead letters (publish → claim → final failure, as the relay records it) and one pending. */
  async function seedOutboxDeadLetters() {
    const publisher = new OutboxPublisher<EntityManager>({ writer: outbox });
    const publish = (destination: string, type: string) =>
      dataSource.transaction(async (manager) => {
        const [id] = await publisher.publish(
          { destination, type, key: randomUUID(), payload: { destination } },
          { manager },
        );
        return id!;
      });
    const pay1 = await publish('payments', 'payment.requested');
    const pay2 = await publish('payments', 'payment.requested');
    const email = await publish('emails', 'email.send');
    const token = randomUUID();
    const claimed = new Set<string>();
    // The claim waits for the commit watermark (cluster-wide xmin): poll, never sleep blindly.
    const deadline = Date.now() + 20_000;
    while (claimed.size < 3) {
      if (Date.now() > deadline) throw new Error('could not claim the seeded messages');
      for (const m of await outbox.claim(token, 10, 60_000)) claimed.add(m.id);
      if (claimed.size < 3) await new Promise((r) => setTimeout(r, 20));
    }
    const failedIds = await outbox.markFailed(
      token,
      [pay1, pay2, email].map((id) => ({ id, error: 'broker rejected: no route', delayMs: null })),
    );
    expect(failedIds.sort()).toEqual([pay1, pay2, email].sort());
    await publish('orders', 'order.placed'); // stays pending: the backlog
    return { pay1, pay2, email };
  }

  it('reports, lists, shows, replays, discards and releases with the right output and exit codes', async () => {
    const env = { DATABASE_URL: databaseUrl(db), SAGE_SCHEMA: '' };
    const missing = randomUUID();
    const runs = await runBatch(
      [
        ['status', '--json', '--stalled-after', '0'],
        ['status'],
        ['sagas', 'list', '--status', 'waiting', '--json'],
        ['sagas', 'list', '--name', 'refund', '--json'],
        ['sagas', 'list', '--limit', '2', '--json'],
        ['sagas', 'show', ids.failed, '--json'],
        ['sagas', 'show', ids.waiting],
        ['sagas', 'show', missing],
        ['sagas', 'show', 'not-a-uuid'],
        ['sagas', 'list', '--status', 'stuck'],
        ['sagas', 'list', '--bogus'],
        ['outbox', 'dead-letters', 'list', '--destination', 'payments', '--json'],
        ['outbox', 'show', deadLetters.email, '--json'],
        ['outbox', 'dead-letters', 'replay', deadLetters.pay1, '--json', '--yes'],
        [
          'outbox',
          'dead-letters',
          'replay',
          '--all-matching',
          '--destination',
          'payments',
          '--dry-run',
          '--json',
        ],
        ['outbox', 'dead-letters', 'replay', '--all-matching', '--json'],
        [
          'outbox',
          'dead-letters',
          'replay',
          '--all-matching',
          '--destination',
          'payments',
          '--json',
          '--yes',
        ],
        ['outbox', 'dead-letters', 'discard', deadLetters.email, '--dry-run', '--json'],
        ['outbox', 'dead-letters', 'discard', deadLetters.email],
        ['outbox', 'dead-letters', 'discard', deadLetters.email, '--yes', '--json'],
        ['outbox', 'dead-letters', 'replay', deadLetters.email, '--json', '--yes'],
        ['inbox', 'dead-letters', 'list', '--consumer', 'payments.order-placed', '--json'],
        [
          'inbox',
          'dead-letters',
          'release',
          '--consumer',
          'payments.order-placed',
          'm-1',
          'm-404',
          '--json',
          '--yes',
        ],
        ['inbox', 'dead-letters', 'release', 'm-2'],
        ['status', '--json'],
        ['status', '--schema', 'Bad-Schema'],
        ['status', '--database-url', 'postgres://sage:supersecretpw@127.0.0.1:1/none'],
        ['outbox', '--help'],
        ['sagas', 'list', '--help'],
      ],
      env,
    );
    const [
      status,
      statusHuman,
      waitingList,
      refundList,
      limited,
      showFailed,
      showWaiting,
      showMissing,
      showBadId,
      badStatus,
      badOption,
      dlList,
      showMessage,
      replayOne,
      dryRun,
      allNoFilter,
      replayAll,
      discardDryRun,
      discardNoYes,
      discard,
      replayDiscarded,
      inboxList,
      release,
      releaseNoConsumer,
      statusAfter,
      badSchema,
      unreachable,
      outboxHelp,
      listHelp,
    ] = runs;
    for (const run of runs) expect(run.stderr).not.toMatch(/\n\s+at /); // never a stack trace

    // status: every section from the rows above; attention points at the runbooks.
    expect(status!.code).toBe(0);
    const s = parse<{
      outbox: Record<string, unknown> & {
        deadLettersByDestination: { destination: string; count: number }[];
      };
      sagas: {
        byStatus: Record<string, number>;
        stalled: number;
        oldestLive: { id: string; awaitingSteps: string[] }[];
      };
      inbox: { deadLetters: number; deadLettersByConsumer: { consumer: string; count: number }[] };
      attention: { runbook: string }[];
    }>(status);
    expect(s.outbox).toMatchObject({
      pending: 1,
      claimed: 0,
      deadLetters: 3,
      pendingBackingOff: 0,
    });
    expect(s.outbox.deadLettersByDestination[0]).toMatchObject({
      destination: 'payments',
      count: 2,
    });
    expect(s.sagas.byStatus).toEqual({
      running: 2,
      waiting: 1,
      compensating: 0,
      completed: 1,
      compensated: 0,
      failed: 1,
    });
    // The unowned one (due at once with --stalled-after 0); the waiting one wakes in 10 min.
    expect(s.sagas.stalled).toBe(1);
    expect(s.sagas.oldestLive.find((x) => x.id === ids.waiting)?.awaitingSteps).toEqual([
      'reserve',
    ]);
    expect(s.inbox.deadLettersByConsumer).toEqual([
      expect.objectContaining({ consumer: 'payments.order-placed', count: 2 }),
    ]);
    expect(s.attention.map((a) => a.runbook)).toEqual(
      expect.arrayContaining([
        'docs/runbooks/outbox-dead-letters.md',
        'docs/runbooks/saga-stuck.md',
        'docs/runbooks/version-mismatch.md',
        'docs/runbooks/inbox-dead-letters.md',
      ]),
    );
    expect(statusHuman!.code).toBe(0);
    expect(statusHuman!.stdout).toMatch(/OUTBOX[\s\S]*SAGAS[\s\S]*INBOX[\s\S]*ATTENTION/);
    expect(statusHuman!.stdout).toContain('payment.requested');

    // sagas list / show
    const waiting = parse<{
      sagas: { id: string; status: string; awaitingSteps: string[]; replyDeadline: string }[];
    }>(waitingList).sagas;
    expect(waiting).toEqual([
      expect.objectContaining({ id: ids.waiting, status: 'waiting', awaitingSteps: ['reserve'] }),
    ]);
    expect(Date.parse(waiting[0]!.replyDeadline)).toBeGreaterThan(Date.now());
    expect(parse<{ sagas: { id: string }[] }>(refundList).sagas.map((x) => x.id)).toEqual([
      ids.other,
    ]);
    expect(parse<{ sagas: unknown[] }>(limited).sagas).toHaveLength(2);
    const failed = parse<{ saga: SagaRecord }>(showFailed).saga;
    expect(failed).toMatchObject({
      id: ids.failed,
      status: 'failed',
      failedStep: 'charge',
      error: 'compensation of reserve kept failing',
    });
    expect(failed.steps).toEqual([
      expect.objectContaining({ name: 'reserve', status: 'pending', attempts: 0 }),
      expect.objectContaining({
        name: 'charge',
        status: 'failed',
        attempts: 3,
        error: 'card declined',
      }),
    ]);
    expect(showWaiting!.code).toBe(0);
    expect(showWaiting!.stdout).toMatch(/reserve\s+waiting\s+1\s+0\s+\d{4}-\d\d-\d\dT/);
    expect(showMissing).toMatchObject({ code: 1, stdout: '' });
    expect(showMissing!.stderr).toContain(`saga ${missing} not found`);
    expect(showBadId!.code).toBe(2);
    expect(showBadId!.stderr).toContain('must be a UUID');
    expect(badStatus!.code).toBe(2);
    expect(badStatus!.stderr).toContain('--status must be one of running, waiting, compensating');
    expect(badOption!.code).toBe(2);
    expect(badOption!.stderr).toMatch(/--bogus/);

    // outbox dead letters: list, show, replay (one, dry run, by filter), discard
    expect(
      parse<{ messages: { id: string }[] }>(dlList)
        .messages.map((m) => m.id)
        .sort(),
    ).toEqual([deadLetters.pay1, deadLetters.pay2].sort());
    expect(parse<{ message: unknown }>(showMessage).message).toMatchObject({
      id: deadLetters.email,
      status: 'dead_letter',
      lastError: 'broker rejected: no route',
      attempts: 1,
    });
    expect(replayOne!.code).toBe(0);
    expect(parse(replayOne)).toEqual({ replayed: [deadLetters.pay1], notFound: [] });
    expect(parse(dryRun)).toEqual({ dryRun: true, wouldReplay: [deadLetters.pay2], more: false });
    // Without --yes: the preview on stdout, nothing changed, exit 2 naming --yes (replayAll and
    // discard below find the same messages still dead-lettered).
    expect(allNoFilter!.code).toBe(2);
    expect(parse(allNoFilter)).toEqual({
      dryRun: true,
      wouldReplay: [deadLetters.pay2, deadLetters.email],
      more: false,
    });
    expect(allNoFilter!.stderr).toContain('every dead letter: no filter given');
    expect(allNoFilter!.stderr).toContain('run again with --yes');
    expect(parse(replayAll)).toEqual({ replayed: [deadLetters.pay2] });
    expect(discardDryRun!.code).toBe(0);
    expect(parse(discardDryRun)).toEqual({
      dryRun: true,
      wouldDiscard: [deadLetters.email],
      notFound: [],
    });
    expect(discardNoYes!.code).toBe(2);
    expect(discardNoYes!.stdout).toContain('dry run: would discard 1 dead letter; nothing changed');
    expect(discardNoYes!.stdout).toContain(deadLetters.email);
    expect(discardNoYes!.stderr).toContain(
      'nothing changed: this would delete 1 dead letter for good; check the list above, then run again with --yes',
    );
    expect(parse(discard)).toEqual({ discarded: [deadLetters.email], notFound: [] });
    expect(replayDiscarded!.code).toBe(1);
    expect(parse(replayDiscarded)).toEqual({ replayed: [], notFound: [deadLetters.email] });

    // inbox dead letters
    expect(
      parse<{ entries: { messageId: string; lastError: string }[] }>(inboxList).entries,
    ).toEqual([
      expect.objectContaining({ messageId: 'm-1', lastError: 'TypeError: amount is undefined' }),
      expect.objectContaining({ messageId: 'm-2' }),
    ]);
    expect(release!.code).toBe(1); // one id was not a dead letter
    expect(parse(release)).toEqual({
      consumer: 'payments.order-placed',
      released: ['m-1'],
      notFound: ['m-404'],
    });
    expect(releaseNoConsumer!.code).toBe(2);
    expect(releaseNoConsumer!.stderr).toContain('--consumer is required');

    // status after the changes
    const after = parse<{ outbox: Record<string, number>; inbox: { deadLetters: number } }>(
      statusAfter,
    );
    expect(after.outbox).toMatchObject({ pending: 3, deadLetters: 0 });
    expect(after.inbox.deadLetters).toBe(1);

    // bad connection settings: exit codes, and no credentials in the message
    expect(badSchema!.code).toBe(2);
    expect(badSchema!.stderr).toContain('is not a valid schema name');
    expect(unreachable!.code).toBe(1);
    expect(unreachable!.stderr).toContain('cannot use the database at 127.0.0.1:1/none');
    expect(unreachable!.stderr).not.toContain('supersecretpw');
    expect(unreachable!.stderr).toContain(
      'sage: warning: --database-url holds a password, which other users can read in "ps"',
    );
    expect(status!.stderr).toBe(''); // DATABASE_URL: no warning
    expect(outboxHelp!.code).toBe(0);
    expect(outboxHelp!.stdout).toContain('outbox dead-letters replay');
    expect(listHelp!.code).toBe(0);
    expect(listHelp!.stdout).toContain('--status S');

    // The rows themselves: replayed letters are pending again with attempts reset; the discarded
    // one is gone; the released inbox row is gone.
    await withClient(db.name, async (client) => {
      const { rows } = await client.query<{ id: string; status: string; attempts: number }>(
        'SELECT id, status, attempts FROM sage.outbox_message WHERE id = ANY($1::uuid[]) ORDER BY id',
        [[deadLetters.pay1, deadLetters.pay2, deadLetters.email]],
      );
      expect(rows).toEqual(
        [deadLetters.pay1, deadLetters.pay2]
          .sort()
          .map((id) => ({ id, status: 'pending', attempts: 0 })),
      );
      const inboxRows = await client.query<{ message_id: string }>(
        `SELECT message_id FROM sage.inbox_message WHERE consumer = 'payments.order-placed' ORDER BY 1`,
      );
      expect(inboxRows.rows.map((r) => r.message_id)).toEqual(['m-2']);
    });
  });

  it('escapes terminal controls from stored text, and changes nothing without --yes or with --dry-run', async () => {
    // A broker-supplied message id and error, and a saga error, that would clear the screen,
    // retitle the window and reverse the text on a raw terminal.
    const evilId = 'evil\x1b[2J\u202eid';
    const evilError = 'boom\x1b]0;owned\x07\u202egnp.exe\x9b31m\r';
    const consumer = 'evil.consumer';
    await new PostgresInboxStore(dataSource).recordFailure({
      consumer,
      messageId: evilId,
      error: evilError,
      maxAttempts: 1,
      message: { note: evilError },
    });
    const evilSaga = randomUUID();
    await saga(evilSaga, 'order-placement', 'w1');
    await sagas.transition({ sagaId: evilSaga, owner: 'w1' }, ['running'], 'failed', {
      error: evilError,
      failedStep: 'charge',
    });
    const release = ['inbox', 'dead-letters', 'release', '--consumer', consumer, evilId];
    const env = { DATABASE_URL: databaseUrl(db), SAGE_SCHEMA: '' };
    const runs = await runBatch(
      [
        ['inbox', 'dead-letters', 'list', '--consumer', consumer],
        ['status'],
        ['sagas', 'list', '--status', 'failed'],
        ['sagas', 'show', evilSaga],
        ['inbox', 'dead-letters', 'list', '--consumer', consumer, '--json'],
        release,
        [...release, '--dry-run'],
        [...release, '--dry-run', '--json'],
        [...release, '--dry-run', '--yes'],
        [...release, '--yes'],
      ],
      env,
    );
    const [list, status, sagaList, sagaShow, listJson, noYes, dryRun, dryRunJson, both, yes] = runs;
    const RAW =
      // eslint-disable-next-line no-control-regex -- asserting none reaches the terminal
      /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
    for (const run of runs) {
      expect(run.stdout).not.toMatch(RAW);
      expect(run.stderr).not.toMatch(RAW);
    }
    for (const run of [list, noYes, dryRun, yes])
      expect(run!.stdout).toContain('evil\\x1b[2J\\u202eid');
    expect(status!.stdout).toContain(`consumer ${consumer}: 1 inbox dead letters`);
    for (const run of [list, sagaList, sagaShow])
      expect(run!.stdout).toContain('boom\\x1b]0;owned\\x07\\u202egnp.exe\\x9b31m');
    expect(sagaShow!.stdout).toContain('\\x0d');
    // JSON: the same strings once parsed.
    expect(
      parse<{ entries: { messageId: string; lastError: string }[] }>(listJson).entries,
    ).toEqual([expect.objectContaining({ messageId: evilId, lastError: evilError })]);
    // Without --yes: the preview, exit 2, the message naming --yes; --dry-run: exit 0; both: usage.
    expect(noYes!.code).toBe(2);
    expect(noYes!.stdout).toContain(
      `dry run: would release 1 dead letter of ${consumer}; nothing changed`,
    );
    expect(noYes!.stderr).toContain('run again with --yes');
    expect(dryRun!.code).toBe(0);
    expect(parse(dryRunJson)).toEqual({
      dryRun: true,
      consumer,
      wouldRelease: [evilId],
      notFound: [],
    });
    expect(both!.code).toBe(2);
    expect(both!.stderr).toContain('give --dry-run or --yes, not both');
    // Still there after all of those (the --yes run found and released it), and gone after it.
    expect(yes!.code).toBe(0);
    expect(yes!.stdout).toBe('released evil\\x1b[2J\\u202eid\n');
    await withClient(db.name, async (client) => {
      const { rows } = await client.query('SELECT 1 FROM sage.inbox_message WHERE consumer = $1', [
        consumer,
      ]);
      expect(rows).toHaveLength(0);
    });
  });

  it('migrate --check exits 1 on an unmigrated database, migrate applies, then --check exits 0', async () => {
    const empty = await createTestDatabase({ migrated: false });
    try {
      const env = { DATABASE_URL: databaseUrl(empty) };
      // A usage error through the real entry point, alongside the first migrate check.
      const [before, usage] = await Promise.all([
        runNode(MAIN, ['migrate', '--check', '--json'], env),
        runNode(MAIN, ['sagas', 'show'], env),
      ]);
      expect(usage.code).toBe(2);
      expect(usage.stderr).toBe('sage: missing <id>\nRun "sage sagas show --help" for usage.\n');
      expect(before.code).toBe(1);
      expect(parse<{ upToDate: boolean; pending: string[] }>(before)).toEqual({
        upToDate: false,
        pending: [
          'SageSagaState1764230400000',
          'SageOutbox1764316800000',
          'SageInbox1764403200000',
          'SageRemoteSteps1764489600000',
          'SageSagaInputFingerprint1764576000000',
          'SageSubjectKeys1764662400000',
          'SageAuditLog1764748800000',
          'SageRetention1764835200000',
          'SageSagaListing1765008000000',
        ],
      });
      // main.ts's exit-code wiring is proven above; these two share one process.
      const [migrate, afterRun] = await runBatch(
        [
          ['migrate', '--json'],
          ['migrate', '--check'],
        ],
        env,
      );
      expect(migrate!.code).toBe(0);
      expect(parse<{ ran: string[] }>(migrate).ran).toEqual(
        parse<{ pending: string[] }>(before).pending,
      );
      expect(afterRun).toMatchObject({ code: 0, stderr: '' });
      expect(afterRun!.stdout).toContain('up to date');
    } finally {
      await empty.drop();
    }
  });
});
