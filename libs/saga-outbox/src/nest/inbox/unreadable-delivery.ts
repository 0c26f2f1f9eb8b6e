import type { DeliveredMessage } from '../../core/ports/broker';
import { MessageRefusedError } from '../../core/inbox/message-refused';
import { DataUnreadableError } from '../../core/protection/protection-errors';

/**
 * What a transport context (`@Ctx()`) says about a message that must not be handled: its encrypted
 * fields could not be decrypted, or it does not match its contract (SageBrokerContext's
 * getUnreadableError) with getDeliveredMessage (the message as received), duck-typed so the inbox
 * does not depend on `@nestjs/microservices`. Undefined when the context says nothing of the kind,
 * or the message was fine.
 */
export function unreadableDelivery(
  context: unknown,
):
  | { error: DataUnreadableError | MessageRefusedError; message: DeliveredMessage | undefined }
  | undefined {
  if (typeof context !== 'object' || context === null) return undefined;
  const ctx = context as { getUnreadableError?: unknown; getDeliveredMessage?: unknown };
  if (typeof ctx.getUnreadableError !== 'function') return undefined;
  const error: unknown = (ctx.getUnreadableError as () => unknown).call(context);
  if (!(error instanceof DataUnreadableError) && !(error instanceof MessageRefusedError))
    return undefined;
  const message: unknown =
    typeof ctx.getDeliveredMessage === 'function'
      ? (ctx.getDeliveredMessage as () => unknown).call(context)
      : undefined;
  return {
    error,
    message:
      typeof message === 'object' && message !== null ? (message as DeliveredMessage) : undefined,
  };
}
