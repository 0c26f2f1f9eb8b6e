/**
 * `--operator` on the commands that change dead letters: on real PostgreSQL the audit entries of a
 * replay, a discard and a release name the operator (`--operator`, else SAGE_OPERATOR, else the OS
 * user), set per transaction; a bad name is a usage error before anything changes. runCli runs
 * in-process (sage-cli.int-spec.ts covers the bin and the output of these commands).
 */
import { randomUUID } from 'node:crypto';
import { userInfo } from 'node:os';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '@test/support/pg';
import { runCli } from './cli';
import { EXIT_OK, EXIT_USAGE } from './cli-errors';

jest.setTimeout(30_000);

let db: TestDatabase;
let client: Client;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  db = await createTestDatabase();
  client = new Client(db.connection);
  await client.connect();
  const c = db.connection;
  env = {
    DATABASE_URL: `postgres://${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@${c.host}:${c.port}/${c.database}`,
  };
});
afterAll(async () => {
  await client?.end();
  await db?.drop();
});

async function sage(argv: string[], extraEnv: NodeJS.ProcessEnv = {}) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    env: { ...env, ...extraEnv },
    out: (t) => void (stdout += t),
    err: (t) => void (stderr += t),
  });
  return { code, stdout, stderr };
}

/** An outbox dead letter, as the relay leaves one (pending → dead_letter). */
async function outboxDeadLetter(): Promise<string> {
  const id = randomUUID();
  await client.query(
    `INSERT INTO sage.outbox_message (id, destination, type, payload) VALUES ($1, 'payments', 'payment.requested', '{}')`,
    [id],
  );
  await client.query(
    `UPDATE sage.outbox_message SET status = 'dead_letter', last_error = 'no route', dead_lettered_at = now() WHERE id = $1`,
    [id],
  );
  return id;
}

async function inboxDeadLetter(consumer: string): Promise<string> {
  const id = randomUUID();
  await client.query(
    `INSERT INTO sage.inbox_message (consumer, message_id, status, last_error) VALUES ($1, $2, 'dead_letter', 'boom')`,
    [consumer, id],
  );
  return id;
}

/** The actor of the (pending, unsealed: no sealer runs here) audit entry of `action` on `targetId`. */
async function actorOf(action: string, targetId: string): Promise<string[]> {
  const { rows } = await client.query<{ actor: string }>(
    `SELECT actor FROM sage.audit_pending WHERE action = $1 AND target_id = $2 ORDER BY id`,
    [action, targetId],
  );
  return rows.map((r) => r.actor);
}

it('replay and discard with --operator record that operator as the actor', async () => {
  const replayed = await outboxDeadLetter();
  const discarded = await outboxDeadLetter();
  expect(await actorOf('outbox.dead_lettered', replayed)).toEqual([db.connection.user]);

  const replay = await sage([
    'outbox',
    'dead-letters',
    'replay',
    replayed,
    '--yes',
    '--operator',
    'alice',
  ]);
  expect(replay).toMatchObject({ code: EXIT_OK, stderr: '' });
  expect(await actorOf('outbox.replayed', replayed)).toEqual(['alice']);

  const discard = await sage(
    ['outbox', 'dead-letters', 'discard', discarded, '--yes', '--operator', 'bob'],
    { SAGE_OPERATOR: 'carol' },
  );
  expect(discard.code).toBe(EXIT_OK);
  expect(await actorOf('outbox.discarded', discarded)).toEqual(['bob']);
});

it('replay --all-matching without --operator takes SAGE_OPERATOR, else the OS user', async () => {
  const first = await outboxDeadLetter();
  expect(
    (
      await sage(['outbox', 'dead-letters', 'replay', '--all-matching', '--yes'], {
        SAGE_OPERATOR: 'dave',
      })
    ).code,
  ).toBe(EXIT_OK);
  expect(await actorOf('outbox.replayed', first)).toEqual(['dave']);

  const second = await outboxDeadLetter();
  expect((await sage(['outbox', 'dead-letters', 'replay', second, '--yes'])).code).toBe(EXIT_OK);
  expect(await actorOf('outbox.replayed', second)).toEqual([userInfo().username]);
});

it('inbox release with --operator records that operator', async () => {
  const consumer = `payments.${randomUUID()}`;
  const id = await inboxDeadLetter(consumer);
  const release = await sage([
    'inbox',
    'dead-letters',
    'release',
    '--consumer',
    consumer,
    id,
    '--yes',
    '--operator',
    'erin',
  ]);
  expect(release).toMatchObject({ code: EXIT_OK, stderr: '' });
  expect(await actorOf('inbox.released', `${consumer}/${id}`)).toEqual(['erin']);
});

it('refuses an operator name that is not printable or too long, changing nothing', async () => {
  const id = await outboxDeadLetter();
  for (const [name, problem] of [
    ['eve\nroot', /--operator must be printable/],
    ['x'.repeat(129), /--operator must be at most 128 characters, got 129/],
    [' ', /--operator must be a non-empty name/],
  ] as const) {
    const run = await sage(['outbox', 'dead-letters', 'replay', id, '--yes', '--operator', name]);
    expect(run.code).toBe(EXIT_USAGE);
    expect(run.stderr).toMatch(problem);
  }
  const fromEnv = await sage(['outbox', 'dead-letters', 'replay', id, '--yes'], {
    SAGE_OPERATOR: 'a\u202Eb',
  });
  expect(fromEnv.code).toBe(EXIT_USAGE);
  expect(fromEnv.stderr).toMatch(/SAGE_OPERATOR must be printable/);
  expect(await actorOf('outbox.replayed', id)).toEqual([]);
  // Read-only commands ignore SAGE_OPERATOR.
  expect((await sage(['outbox', 'show', id, '--json'], { SAGE_OPERATOR: 'a\u202Eb' })).code).toBe(
    EXIT_OK,
  );
});
