import { SetMetadata } from '@nestjs/common';
import type { ReplyToAllowList, SagaCommandAnswer } from '../../core/remote/participant-protocol';
import type { ReceivedSagaCommand } from '../../core/saga/saga-command';
import type { InboxContext } from '../inbox/idempotent-handler.decorator';

export const SAGA_COMMAND_HANDLER_METADATA = 'sage:saga-command-handler';

export interface SagaCommandHandlerOptions {
  /** Topic / queue / subject the orchestrator sends this command type to. */
  destination: string;
  /**
   * Inbox consumer name and broker consumer group. Every handler on one destination shares it
   * (one subscription per destination dispatches on the command type). Default: the destination.
   */
  consumer?: string;
  /** Attempts (first delivery included) before the command is dead-lettered. Default: the inbox's (5). */
  maxAttempts?: number;
  /**
   * Reply destinations this handler answers to: a list (e.g. `['orders.saga-replies']`) or a
   * predicate. A command whose `sage-reply-to` is not allowed is dead-lettered at once with reason
   * `reply-to-not-allowed`: not handled, no reply sent. Default: any destination.
   */
  replyTo?: ReplyToAllowList;
}

export interface SagaCommandHandlerMetadata {
  type: string;
  options: SagaCommandHandlerOptions;
}

export { rejectCommand, isRejection } from '../../core/remote/participant-protocol';
export type { SagaCommandRejection } from '../../core/remote/participant-protocol';

/** What a `@SagaCommandHandler` method looks like. */
export type SagaCommandHandlerMethod = (
  command: ReceivedSagaCommand,
  context: InboxContext,
) => Promise<SagaCommandAnswer>;

/**
 * Makes a provider method the participant side of a remote saga step: it receives commands of
 * `type` sent to `options.destination`, at most once per command (inbox), in one transaction with
 * the inbox row and the reply, which Sage writes to the participant's outbox addressed to the
 * orchestrator's reply destination:
 *
 * ```ts
 * @SagaCommandHandler('payment.authorize', { destination: 'payment.commands', consumer: 'payment-service' })
 * async authorize(command: ReceivedSagaCommand, { manager }: InboxContext) {
 *   if (declined(command.payload)) return rejectCommand('card declined');
 *   const auth = await manager.save(Authorization, { key: command.idempotencyKey, ... });
 *   return { authorizationId: auth.id };          // the step's result in the orchestrator
 * }
 * ```
 *
 * The same command may arrive again (a resend after a reply timeout carries a new message id but
 * the same `idempotencyKey`): make the effect idempotent on `command.idempotencyKey`. A compensation
 * arrives as its own command type (with `phase: 'compensate'`), possibly for an action that never
 * happened: undoing nothing is a success.
 */
export function SagaCommandHandler(
  type: string,
  options: SagaCommandHandlerOptions,
): MethodDecorator {
  return SetMetadata<string, SagaCommandHandlerMetadata>(SAGA_COMMAND_HANDLER_METADATA, {
    type,
    options,
  });
}
