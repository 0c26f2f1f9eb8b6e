import type { ContractRegistry } from '../contracts/contract-registry';
import type { InboxEndpoint } from '../inbox/inbox-subscription';
import type { InboxHandlerContext } from '../inbox/inbox-processor';
import { MessageRefusedError } from '../inbox/message-refused';
import type { JsonValue } from '../json';
import type { OutboxPublisher } from '../outbox/outbox-publisher';
import type { DeliveredMessage } from '../ports/broker';
import {
  parseSagaCommand,
  sagaReplyMessage,
  type ReceivedSagaCommand,
  type SagaReplyOutcome,
} from '../saga/saga-command';

/**
 * The participant's side of remote saga steps: a command arrives through the inbox, the handler of
 * its type runs in the inbox transaction, and its answer (result, rejection, or "no handler")
 * becomes the reply, written to the participant's outbox in that same transaction, so the effect,
 * the inbox row and the reply commit together or not at all.
 */

/** Brands a SagaCommandRejection: a symbol, so no JSON result a handler returns can pass for one. */
const REJECTION = Symbol('sage.saga-command-rejection');

/** A participant's refusal: the orchestrating step fails (and its saga compensates) with `reason`. */
export interface SagaCommandRejection {
  readonly [REJECTION]: true;
  readonly reason: string;
}

/**
 * Return this from a command handler (a `@SagaCommandHandler` method) to refuse the command (e.g.
 * a declined card). What the handler wrote in the transaction still commits (record the refusal
 * if you keep one), together with the inbox row and the failure reply. Throwing instead means
 * "could not handle it now": the transaction rolls back and the broker redelivers.
 */
export function rejectCommand(reason: string): SagaCommandRejection {
  return { [REJECTION]: true, reason };
}

export function isRejection(value: unknown): value is SagaCommandRejection {
  return typeof value === 'object' && value !== null && REJECTION in value;
}

/** What a command handler answers: the step's result, a rejection, or nothing (result null). */
export type SagaCommandAnswer = JsonValue | SagaCommandRejection | undefined | void;

/**
 * Where a participant agrees to send replies: the destinations allowed, or a predicate. A command
 * whose `sage-reply-to` is not allowed is refused (dead-lettered at once, never handled, no reply).
 */
export type ReplyToAllowList = readonly string[] | ((replyTo: string) => boolean);

/** Whether `list` allows replies to `replyTo` (no list: any destination). */
export function replyToAllowed(list: ReplyToAllowList | undefined, replyTo: string): boolean {
  if (list === undefined) return true;
  return typeof list === 'function' ? list(replyTo) === true : list.includes(replyTo);
}

/** One command type's handler, run in the inbox transaction. */
export interface SagaCommandHandlerEntry<Tx> {
  /** For messages, e.g. `ClassName.methodName`. */
  readonly name: string;
  /** Reply destinations this handler answers to; undefined: any. */
  readonly replyTo?: ReplyToAllowList;
  run(command: ReceivedSagaCommand, context: InboxHandlerContext<Tx>): Promise<SagaCommandAnswer>;
}

/** A destination a participant consumes commands on: one consumer, one handler per command type. */
export interface ParticipantEndpoint<Tx> {
  readonly destination: string;
  /** Inbox consumer name and broker consumer group. */
  readonly consumer: string;
  readonly maxAttempts: number | undefined;
  readonly handlers: ReadonlyMap<string, SagaCommandHandlerEntry<Tx>>;
}

/** Where the reply is written: the participant's outbox (OutboxPublisher's `publish`). */
export type ReplyOutbox<Tx> = Pick<OutboxPublisher<Tx>, 'publish'>;

/** What the participant checks a handler's result with: its incoming contracts (`contracts.consumes`). */
export type ReplyResultContracts = Pick<ContractRegistry, 'checkReplyResult'>;

/** The reply's outcome for what the handler answered. */
export function commandOutcome(answer: SagaCommandAnswer): SagaReplyOutcome {
  return isRejection(answer)
    ? { ok: false, error: answer.reason }
    : { ok: true, result: answer ?? null };
}

/**
 * Answers one command, in `context.tx`: parses it (SagaMessageInvalidError when it is not a Sage
 * command: the inbox counts the attempt and dead-letters it in the end), runs the handler of its
 * type, and writes the reply to the outbox in the same transaction. A command of a type no handler
 * declares is answered with a failure, so the saga compensates instead of waiting for a timeout.
 * With `contracts`, a success result is checked against the command contract's `reply` schema
 * first: a result that does not match is the handler's failure (ContractViolationError: the
 * transaction rolls back, the attempt is counted, the command retried, dead-lettered in the end).
 */
export async function answerSagaCommand<Tx>(
  endpoint: ParticipantEndpoint<Tx>,
  outbox: ReplyOutbox<Tx>,
  message: DeliveredMessage,
  context: InboxHandlerContext<Tx>,
  contracts?: ReplyResultContracts,
): Promise<void> {
  const command = parseSagaCommand(message);
  const handler = endpoint.handlers.get(message.type);
  assertReplyToAllowed(endpoint, handler, command.replyTo);
  const outcome: SagaReplyOutcome = handler
    ? commandOutcome(await handler.run(command, context))
    : {
        ok: false,
        error: `no handler for command type "${message.type}" on "${endpoint.destination}"`,
      };
  if (outcome.ok) contracts?.checkReplyResult(message.type, outcome.result);
  await outbox.publish(sagaReplyMessage(command, outcome), { manager: context.tx });
}

/**
 * Refuses (MessageRefusedError `reply-to-not-allowed`) a command whose reply destination its
 * handler does not allow; a command of a type no handler declares may only be answered (with its
 * failure) where some handler of the endpoint allows, when any has a list.
 */
function assertReplyToAllowed<Tx>(
  endpoint: ParticipantEndpoint<Tx>,
  handler: SagaCommandHandlerEntry<Tx> | undefined,
  replyTo: string,
): void {
  const allowed = handler
    ? replyToAllowed(handler.replyTo, replyTo)
    : [...endpoint.handlers.values()].every((h) => h.replyTo === undefined) ||
      [...endpoint.handlers.values()].some(
        (h) => h.replyTo !== undefined && replyToAllowed(h.replyTo, replyTo),
      );
  if (!allowed)
    throw new MessageRefusedError(
      'reply-to-not-allowed',
      `the command asks for its reply on ${JSON.stringify(replyTo.slice(0, 255))}, which ${handler ? handler.name : `no handler on "${endpoint.destination}"`} allows`,
    );
}

/** The participant endpoint as an inbox subscription (see InboxSubscriptions). */
export function participantInboxEndpoint<Tx>(
  endpoint: ParticipantEndpoint<Tx>,
  outbox: ReplyOutbox<Tx>,
  /** Checks each command before anything runs (signatures: signatureCheck). */
  verify?: (message: DeliveredMessage) => void,
  /** The participant's incoming contracts: each success result is checked against its `reply` schema. */
  contracts?: ReplyResultContracts,
): InboxEndpoint<Tx, void> {
  return {
    destination: endpoint.destination,
    consumer: endpoint.consumer,
    maxAttempts: endpoint.maxAttempts,
    verify,
    handle: (message, context) => answerSagaCommand(endpoint, outbox, message, context, contracts),
    deliveryError: {
      message: `command on "${endpoint.destination}" could not be taken`,
      event: 'saga.participant.delivery_error',
    },
  };
}
