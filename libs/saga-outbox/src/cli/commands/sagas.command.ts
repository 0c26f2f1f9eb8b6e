import type { SagaRecord } from '../../core/ports/saga-store';
import { SAGA_STATUSES } from '../../persistence/postgres/postgres-operator-queries';
import { CommandFailedError } from '../cli-errors';
import {
  choiceOption,
  expectArgs,
  intOption,
  stringOption,
  uuidArgument,
  type CommandSpec,
} from '../command';
import { cell, fields, formatDuration, isoOrDash, json, relative, table } from '../format';
import { LIMIT, STALLED_AFTER } from './shared-options';

export const sagasListCommand: CommandSpec = {
  path: ['sagas', 'list'],
  summary: 'sagas, newest first, by status and/or name',
  options: {
    status: {
      type: 'string',
      value: 'S',
      description: `only this status: ${SAGA_STATUSES.join(', ')}`,
    },
    name: { type: 'string', value: 'N', description: 'only sagas of this definition name' },
    limit: LIMIT(50),
    'stalled-after': STALLED_AFTER,
  },
  details: `Columns: AGE since the saga started; AWAITING the remote steps waiting for a reply and when the
first reply is due; STALLED "yes" when the saga is due for a worker and none has claimed it.
Listing terminal statuses (completed, compensated, failed) scans the saga table: fine on demand.

Examples:
  sage sagas list --status waiting
  sage sagas list --status failed --name order-placement --limit 20`,
  async run(ctx) {
    expectArgs(ctx, []);
    const status = choiceOption(ctx, 'status', SAGA_STATUSES);
    const name = stringOption(ctx, 'name');
    const limit = intOption(ctx, 'limit', 50, { min: 1, max: 1000 });
    const db = await ctx.db();
    const [now, sagas] = await Promise.all([
      db.operator.databaseNow(),
      db.operator.listSagas({ status, name }, limit),
    ]);
    if (ctx.json) {
      ctx.io.out(json({ sagas }));
      return;
    }
    if (!sagas.length) {
      ctx.io.out('no sagas match\n');
      return;
    }
    ctx.io.out(
      table(
        ['ID', 'NAME', 'STATUS', 'AGE', 'UPDATED', 'AWAITING', 'STALLED', 'FAILED STEP / ERROR'],
        sagas.map((s) => [
          s.id,
          cell(s.name, 30),
          s.status,
          formatDuration(s.ageSeconds),
          relative(s.updatedAt, now),
          s.awaitingSteps.length
            ? `${s.awaitingSteps.join(',')} (due ${relative(s.replyDeadline, now)})`
            : '-',
          s.stalled ? 'yes' : '-',
          s.failedStep || s.error
            ? cell(`${s.failedStep ?? ''}${s.error ? `: ${s.error}` : ''}`, 60)
            : '-',
        ]),
      ),
    );
    if (sagas.length === limit)
      ctx.io.out(`(first ${limit}; narrow with --status / --name or raise --limit)\n`);
  },
};

export const sagasShowCommand: CommandSpec = {
  path: ['sagas', 'show'],
  summary: 'one saga: status, error, and every step with attempts, error, reply deadline',
  arguments: '<id>',
  options: {},
  details: `Step statuses: pending, waiting (remote command sent, reply awaited), completed, failed,
timed_out (no reply in time: outcome unknown, compensated like a completed step), compensating
(remote compensation awaiting its reply), compensated, compensation_failed.

Example:
  sage sagas show 0193a1e2-7c4b-7f00-8a1b-2f6c1d0e9a11`,
  async run(ctx) {
    const [raw] = expectArgs(ctx, ['<id>']);
    const id = uuidArgument(raw!, 'the saga id');
    const db = await ctx.db();
    const [now, saga] = await Promise.all([db.operator.databaseNow(), db.sagas.load(id)]);
    if (!saga) throw new CommandFailedError(`saga ${id} not found in schema "${db.schema}"`);
    ctx.io.out(ctx.json ? json({ saga }) : renderSaga(saga, now));
  },
};

function renderSaga(s: SagaRecord, now: Date): string {
  let text = fields([
    ['saga', s.id],
    ['name', `${s.name} (version ${s.version})`],
    ['status', s.status],
    ['created', `${s.createdAt.toISOString()} (${relative(s.createdAt, now)})`],
    ['updated', `${s.updatedAt.toISOString()} (${relative(s.updatedAt, now)})`],
    [
      'owner',
      s.owner
        ? `${s.owner}, lease until ${isoOrDash(s.leaseUntil)} (${relative(s.leaseUntil, now)})`
        : '-',
    ],
    ['wake at', s.wakeAt ? `${s.wakeAt.toISOString()} (${relative(s.wakeAt, now)})` : '-'],
    [
      'deadline',
      s.deadlineAt ? `${s.deadlineAt.toISOString()} (${relative(s.deadlineAt, now)})` : '-',
    ],
    ['idempotency key', s.idempotencyKey ?? '-'],
    ['failed step', s.failedStep ?? '-'],
    ['error', s.error ?? '-'],
  ]);
  text +=
    '\n' +
    table(
      ['STEP', 'STATUS', 'ATTEMPTS', 'COMP.ATTEMPTS', 'REPLY DEADLINE', 'COMPLETED', 'ERROR'],
      s.steps.map((st) => [
        st.name,
        st.status,
        String(st.attempts),
        String(st.compensationAttempts),
        st.replyDeadline
          ? `${st.replyDeadline.toISOString()} (${relative(st.replyDeadline, now)})`
          : '-',
        relative(st.completedAt, now),
        cell(st.error, 80),
      ]),
      { right: [2, 3] },
    );
  text += `\ninput: ${cell(JSON.stringify(s.input), 400)}\n`;
  return text;
}
