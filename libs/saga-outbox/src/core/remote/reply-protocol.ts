import type { ContractRegistry } from '../contracts/contract-registry';
import type { InboxEndpoint } from '../inbox/inbox-subscription';
import { MessageRefusedError } from '../inbox/message-refused';
import type { JsonValue } from '../json';
import type { DeliveredMessage } from '../ports/broker';
import type { AppliedReply } from '../ports/saga-store';
import { parseSagaReply, SAGA_HEADERS, type SagaReply } from '../saga/saga-command';
import type { SagaEngine } from '../saga/saga-engine';

/**
 * The orchestrator's side of remote steps: a participant's reply arrives through the inbox, is
 * applied to the waiting step in the inbox transaction, and once that commits the saga is woken,
 * so it resumes at once instead of at the next recovery round.
 */

/** Default inbox consumer (and broker consumer group) of saga replies. */
export const DEFAULT_SAGA_REPLY_CONSUMER = 'sage.saga-replies';

/** What the reply protocol needs of the saga engine. */
export type SagaReplyEngine<Tx> = Pick<
  SagaEngine<Tx>,
  'replyTo' | 'sagaNames' | 'definition' | 'applyReply' | 'replyCommitted'
>;

/** What the orchestrator checks reply results with: its outgoing contracts (`contracts.publishes`). */
export type ReplyContracts = Pick<ContractRegistry, 'replyResultRefusal'>;

/** A reply that changed its step, and how: what the engine reports once the transaction commits. */
export interface AppliedSagaReply {
  reply: SagaReply;
  applied: AppliedReply;
}

/**
 * The destination replies must be consumed from: the engine's `replyTo` when some registered saga
 * has a remote step; undefined when nothing waits for a reply.
 */
export function sagaReplyDestination<Tx>(engine: SagaReplyEngine<Tx>): string | undefined {
  const replyTo = engine.replyTo;
  if (!replyTo) return undefined;
  const remote = engine.sagaNames.some((name) =>
    [...(engine.definition(name)?.steps.values() ?? [])].some((s) => s.kind === 'remote'),
  );
  return remote ? replyTo : undefined;
}

/**
 * Applies one reply in `tx` (the inbox transaction): parses it (SagaMessageInvalidError when it is
 * not a Sage reply: the inbox counts the attempt and dead-letters it in the end) and hands it to
 * the engine. Undefined when the step no longer waits for it (late, duplicate): nothing changes.
 * MessageRefusedError when it answers no command Sage sent (another step's idempotency key, an
 * unknown saga or step, an attempt never sent): the inbox dead-letters it at once. So is a
 * success reply whose result does not match the `reply` schema of the command it answers (named by
 * its `sage-command-type` header) in `contracts` (MessageRefusedError `contract-invalid`), before
 * the engine sees it; a reply without that header (a participant older than contracts) is not
 * checked.
 */
export async function applySagaReply<Tx>(
  engine: SagaReplyEngine<Tx>,
  tx: Tx,
  message: { id: string; payload: JsonValue; headers: Record<string, string> },
  contracts?: ReplyContracts,
): Promise<AppliedSagaReply | undefined> {
  const reply = parseSagaReply(message);
  const commandType = message.headers[SAGA_HEADERS.commandType];
  if (contracts && reply.outcome.ok && typeof commandType === 'string' && commandType !== '') {
    const refusal = contracts.replyResultRefusal(commandType, reply.outcome.result);
    if (refusal) throw new MessageRefusedError(refusal.reason, refusal.detail);
  }
  const applied = await engine.applyReply(tx, reply);
  return applied ? { reply, applied } : undefined;
}

/**
 * The reply destination as an inbox subscription (see InboxSubscriptions): each reply applied
 * once, in the inbox transaction; after the commit the engine reports the step's outcome and the
 * woken saga resumes.
 */
export function sagaReplyInboxEndpoint<Tx>(
  engine: SagaReplyEngine<Tx>,
  destination: string,
  consumer: string = DEFAULT_SAGA_REPLY_CONSUMER,
  /** Checks each reply before anything runs (signatures: signatureCheck). */
  verify?: (message: DeliveredMessage) => void,
  /** The orchestrator's outgoing contracts: success results checked against the commands' `reply`. */
  contracts?: ReplyContracts,
): InboxEndpoint<Tx, AppliedSagaReply | undefined> {
  return {
    destination,
    consumer,
    verify,
    // A dead-lettered reply keeps its (defensive) snapshot, as every other consumer's does.
    handle: (message, { tx }) => applySagaReply(engine, tx, message, contracts),
    committed: (value) => {
      if (value) engine.replyCommitted(value.reply, value.applied);
    },
    deliveryError: {
      message: 'saga reply could not be taken',
      event: 'saga.replies.delivery_error',
    },
  };
}
