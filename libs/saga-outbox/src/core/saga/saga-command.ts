import { SagaCommandInvalidError, SagaOutboxError } from '../errors';
import { assertJsonSerializable, type JsonValue } from '../json';
import type { StepPhase } from '../ports/saga-store';
import { STORABLE_TEXT_FIX, storableTextProblem } from '../text-checks';

/**
 * Remote (command/reply) steps: the wire contract between an orchestrating saga and a participant
 * service. The command travels through the orchestrator's outbox; the participant handles it once
 * (its inbox) and answers through its own outbox to the `sage-reply-to` destination; the reply
 * resumes the saga.
 */

/** What a remote step's action (or a remote compensation) returns: the command to send. */
export interface SagaCommand {
  /** Topic / exchange / subject the participant consumes. */
  destination: string;
  /** Command type, e.g. `payment.authorize` (the participant dispatches on it). */
  type: string;
  payload: JsonValue;
  /** Ordering key; default the saga id, so a step's command and its compensation stay in order. */
  key?: string | null;
  headers?: Record<string, string>;
}

/** Headers Sage puts on every command, and the participant copies onto its reply. */
export const SAGA_HEADERS = {
  sagaId: 'sage-saga-id',
  saga: 'sage-saga',
  step: 'sage-step',
  phase: 'sage-phase',
  attempt: 'sage-attempt',
  idempotencyKey: 'sage-idempotency-key',
  replyTo: 'sage-reply-to',
  /** On replies only: `success` or `failure`. */
  outcome: 'sage-reply-outcome',
  /**
   * On replies only: the type of the command answered, so the orchestrator can check a success
   * reply's result against that command's contract (`reply` schema).
   */
  commandType: 'sage-command-type',
} as const;

/** CloudEvents type of every reply message. */
export const SAGA_REPLY_TYPE = 'sage.saga.reply';

/** What a participant answered, as the orchestrator applies it. */
export type SagaReplyOutcome = { ok: true; result: JsonValue } | { ok: false; error: string };

export interface SagaReply {
  sagaId: string;
  step: string;
  phase: StepPhase;
  /** The attempt of the command answered (`sage-attempt`, echoed by the participant). */
  attempt: number;
  /** The command's `sage-idempotency-key`, echoed: must be the step's (stepIdempotencyKey). */
  idempotencyKey: string;
  outcome: SagaReplyOutcome;
}

/** A command as a participant receives it (parsed from the delivered message's headers). */
export interface ReceivedSagaCommand<TPayload = JsonValue> {
  /** Message id of the command (the inbox deduplicates on it). */
  messageId: string;
  type: string;
  payload: TPayload;
  sagaId: string;
  saga: string;
  step: string;
  phase: StepPhase;
  attempt: number;
  /** `sagaId:step` (or `sagaId:step:compensate`): the same on every resend. Deduplicate effects on it. */
  idempotencyKey: string;
  replyTo: string;
}

/** A message arriving on the reply destination (or at a participant) is not a Sage command/reply. */
export class SagaMessageInvalidError extends SagaOutboxError {
  constructor(
    readonly messageId: string,
    problem: string,
  ) {
    super(
      'SAGA_MESSAGE_INVALID',
      `Message ${messageId} is not a valid saga command or reply: ${problem}. It cannot be applied; it is dead-lettered by the inbox after its attempts.`,
    );
  }
}

const NAME_LIMIT = 255;

/** Validates what a remote step returned; throws a plain Error the runner records as the step's failure. */
export function assertSagaCommand(value: unknown, where: string): SagaCommand {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SagaCommandInvalidError(
      `${where} must return the command to send ({ destination, type, payload }), got ${value === null ? 'null' : typeof value}`,
    );
  }
  const c = value as Partial<SagaCommand>;
  for (const field of ['destination', 'type'] as const) {
    const v = c[field];
    if (typeof v !== 'string' || v.trim() === '' || v.length > NAME_LIMIT) {
      throw new SagaCommandInvalidError(
        `${where} returned a command whose ${field} is not a non-empty string of at most ${NAME_LIMIT} characters`,
      );
    }
    const problem = storableTextProblem(v);
    if (problem)
      throw new SagaCommandInvalidError(
        `${where} returned a command whose ${field} ${problem}: ${STORABLE_TEXT_FIX}`,
      );
  }
  assertJsonSerializable(c.payload ?? null, `Payload of the command of ${where}`);
  return {
    destination: c.destination!,
    type: c.type!,
    payload: c.payload ?? null,
    key: c.key,
    headers: c.headers,
  };
}

/** Reads a command's Sage headers (participant side). */
export function parseSagaCommand<TPayload = JsonValue>(message: {
  id: string;
  type: string;
  payload: JsonValue;
  headers: Record<string, string>;
}): ReceivedSagaCommand<TPayload> {
  const need = headerReader(message);
  const phase = readPhase(message.id, need);
  const attempt = Number(need(SAGA_HEADERS.attempt));
  return {
    messageId: message.id,
    type: message.type,
    payload: message.payload as TPayload,
    sagaId: need(SAGA_HEADERS.sagaId),
    saga: need(SAGA_HEADERS.saga),
    step: need(SAGA_HEADERS.step),
    phase,
    attempt: Number.isInteger(attempt) && attempt > 0 ? attempt : 1,
    idempotencyKey: need(SAGA_HEADERS.idempotencyKey),
    replyTo: need(SAGA_HEADERS.replyTo),
  };
}

/** The reply message a participant writes to its outbox (in its handler's transaction). */
export function sagaReplyMessage(
  command: ReceivedSagaCommand<unknown>,
  outcome: SagaReplyOutcome,
): {
  destination: string;
  type: string;
  key: string;
  payload: JsonValue;
  headers: Record<string, string>;
} {
  return {
    destination: command.replyTo,
    type: SAGA_REPLY_TYPE,
    // The saga's key: replies of one saga stay in order with each other.
    key: command.sagaId,
    payload: outcome.ok ? { result: outcome.result } : { error: outcome.error },
    headers: {
      [SAGA_HEADERS.sagaId]: command.sagaId,
      [SAGA_HEADERS.saga]: command.saga,
      [SAGA_HEADERS.step]: command.step,
      [SAGA_HEADERS.phase]: command.phase,
      [SAGA_HEADERS.attempt]: String(command.attempt),
      [SAGA_HEADERS.idempotencyKey]: command.idempotencyKey,
      [SAGA_HEADERS.outcome]: outcome.ok ? 'success' : 'failure',
      [SAGA_HEADERS.commandType]: command.type,
    },
  };
}

/** Reads a reply (orchestrator side). */
export function parseSagaReply(message: {
  id: string;
  payload: JsonValue;
  headers: Record<string, string>;
}): SagaReply {
  const need = headerReader(message);
  const phase = readPhase(message.id, need);
  const outcome = need(SAGA_HEADERS.outcome);
  const attemptText = need(SAGA_HEADERS.attempt);
  const attempt = Number(attemptText);
  if (!/^[1-9][0-9]{0,8}$/.test(attemptText))
    throw new SagaMessageInvalidError(
      message.id,
      `header "${SAGA_HEADERS.attempt}" is "${attemptText.slice(0, 20)}", not an attempt number`,
    );
  const payload = (message.payload ?? {}) as { result?: JsonValue; error?: unknown };
  if (outcome !== 'success' && outcome !== 'failure')
    throw new SagaMessageInvalidError(
      message.id,
      `header "${SAGA_HEADERS.outcome}" is "${outcome}"`,
    );
  return {
    sagaId: need(SAGA_HEADERS.sagaId),
    step: need(SAGA_HEADERS.step),
    phase,
    attempt,
    idempotencyKey: need(SAGA_HEADERS.idempotencyKey),
    outcome:
      outcome === 'success'
        ? { ok: true, result: payload.result ?? null }
        : {
            ok: false,
            error:
              typeof payload.error === 'string' ? payload.error : 'rejected by the participant',
          },
  };
}

/** A required Sage header of `message`, or SagaMessageInvalidError naming it. */
function headerReader(message: {
  id: string;
  headers: Record<string, string>;
}): (name: string) => string {
  return (name) => {
    const v = message.headers[name];
    if (typeof v !== 'string' || v === '')
      throw new SagaMessageInvalidError(message.id, `header "${name}" is missing`);
    return v;
  };
}

function readPhase(messageId: string, need: (name: string) => string): StepPhase {
  const phase = need(SAGA_HEADERS.phase);
  if (phase !== 'forward' && phase !== 'compensate')
    throw new SagaMessageInvalidError(messageId, `header "${SAGA_HEADERS.phase}" is "${phase}"`);
  return phase;
}
