import type { EntityManager } from 'typeorm';
import type { JsonValue } from '../../core/json';
import {
  parseSagaCommand,
  SAGA_HEADERS,
  type ReceivedSagaCommand,
  type SagaReply,
  type SagaReplyOutcome,
} from '../../core/saga/saga-command';
import type { SagaEngine } from '../../core/saga/saga-engine';
import { queryOnce } from '../../persistence/postgres/run-statement';
import type { SagaSchema } from '../../persistence/postgres/schema-name';
import type { HarnessDatabase } from './harness-database';
import { sagaOutboxRows, type OutboxRow } from './harness-queries.sql';
import { faultAt, type StepFault } from './step-faults';

/**
 * How the participant of a remote step answers, in place of the service the command goes to:
 * `forward` answers the step's command, `compensate` its compensation's (default: success).
 * Commands are resent with the same `idempotencyKey` (after a reply timeout, or after a crash):
 * answer a resend as the first, as a real participant deduplicating on the key would.
 */
export interface RemoteStepReplies {
  /** The reply to the step's command: `{ ok: true, result }` (the step's result) or `{ ok: false, error }`. */
  forward(command: ReceivedSagaCommand): SagaReplyOutcome | Promise<SagaReplyOutcome>;
  /** The reply to its compensation's command, when the compensation sends one. Default: `{ ok: true, result: null }`. */
  compensate?(command: ReceivedSagaCommand): SagaReplyOutcome | Promise<SagaReplyOutcome>;
}

/** A message the saga wrote to the outbox (a command, or what a step emitted), once committed. */
export interface SagaOutboxMessage {
  readonly id: string;
  readonly destination: string;
  readonly type: string;
  readonly key: string | null;
  readonly payload: JsonValue;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Plays the participants of the saga's remote steps during one run: reads the commands the saga
 * committed to its outbox and applies each one's reply, once, in a transaction of the harness's
 * own (as the orchestrator's reply inbox would), then wakes the live worker. A `timeout` fault on
 * a remote phase leaves that attempt's command unanswered.
 */
export class RemoteParticipant {
  private readonly answered = new Set<string>();
  /** Commands seen, in the order they were sent. */
  readonly commands: ReceivedSagaCommand[] = [];

  constructor(
    private readonly db: HarnessDatabase,
    private readonly schema: SagaSchema,
    private readonly replies: Readonly<Record<string, RemoteStepReplies>>,
    private readonly faults: readonly StepFault[],
  ) {}

  /** Answers the commands not answered yet, through `engine` (a live worker's). */
  async answer(sagaId: string, engine: SagaEngine<EntityManager>): Promise<void> {
    for (const row of await this.rows(sagaId)) {
      if (this.answered.has(row.id) || row.headers[SAGA_HEADERS.phase] === undefined) continue;
      const command = parseSagaCommand({
        id: row.id,
        type: row.type,
        payload: row.payload as JsonValue,
        headers: row.headers,
      });
      if (!this.commands.some((c) => c.messageId === command.messageId))
        this.commands.push(command);
      const fault = faultAt(this.faults, command);
      if (fault?.kind === 'timeout') {
        this.answered.add(row.id);
        continue;
      }
      const replies = this.replies[command.step];
      const outcome = await (command.phase === 'forward'
        ? replies?.forward(command)
        : (replies?.compensate?.(command) ?? { ok: true as const, result: null }));
      if (!outcome) continue;
      const reply: SagaReply = {
        sagaId,
        step: command.step,
        phase: command.phase,
        attempt: command.attempt,
        idempotencyKey: command.idempotencyKey,
        outcome,
      };
      const applied = await this.db.dataSource.transaction((tx) => engine.applyReply(tx, reply));
      this.answered.add(row.id);
      if (applied) engine.replyCommitted(reply, applied);
    }
  }

  /** Everything the saga committed to the outbox, in publish order. */
  async messages(sagaId: string): Promise<SagaOutboxMessage[]> {
    return (await this.rows(sagaId)).map((r) => ({
      id: r.id,
      destination: r.destination,
      type: r.type,
      key: r.key,
      payload: r.payload as JsonValue,
      headers: r.headers,
    }));
  }

  private rows(sagaId: string): Promise<OutboxRow[]> {
    return queryOnce(this.db.dataSource, sagaOutboxRows(this.schema, { sagaId }));
  }
}
