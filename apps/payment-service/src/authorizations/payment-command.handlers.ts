import type { Type } from '@nestjs/common';
import {
  rejectCommand,
  SagaCommandHandler,
  type InboxContext,
  type ReceivedSagaCommand,
} from '@sage/saga-outbox';
import { randomUUID } from 'node:crypto';
import { findCardNumber } from '../../../shared/card-number';
import {
  findAuthorization,
  insertAuthorization,
  voidAuthorization,
  type AuthorizationRow,
} from './authorization.sql';

/** What payment-service reads of a `payment.authorize` command (order-service sends more). */
interface AuthorizePayment {
  orderId: string;
  amountCents: number;
  paymentMethod: { token: string; last4: string };
}

const CARD_TOKEN = /^tok_[A-Za-z0-9_]{1,100}$/;
const LAST4 = /^[0-9]{4}$/;

export interface PaymentCommandEndpoint {
  /** Where order-service sends `payment.authorize` / `payment.void`. */
  destination: string;
  /** Inbox consumer name and broker consumer group. */
  consumer: string;
}

/**
 * The participant side of the order saga's `authorize-payment` step. Each handler runs once per
 * command message (inbox) in one transaction with its writes and the reply Sage sends back. A
 * resend after a reply timeout is a new message with the same `idempotencyKey`: the outcome is
 * stored under that key, so every resend gets the first answer.
 *
 * A class made per endpoint because the destination is a decorator argument.
 */
export function paymentCommandHandlers(endpoint: PaymentCommandEndpoint): Type<unknown> {
  const on = { destination: endpoint.destination, consumer: endpoint.consumer };

  class PaymentCommandHandlers {
    /**
     * Authorises with the card token the payment provider issued to the customer's browser; this
     * service never sees a card number, and refuses a command that carries one. Here the provider
     * is simulated: tokens starting `tok_declined` are declined (as providers' test tokens such as
     * `tok_chargeDeclined` are); a real service calls the provider with the token and the command's
     * idempotency key.
     */
    @SagaCommandHandler('payment.authorize', on)
    async authorize(command: ReceivedSagaCommand, { manager }: InboxContext) {
      const p = command.payload as Partial<AuthorizePayment>;
      if (findCardNumber(p))
        return rejectCommand('payment.authorize must carry a card token, never a card number');
      if (
        typeof p?.orderId !== 'string' ||
        !Number.isInteger(p.amountCents) ||
        typeof p.paymentMethod?.token !== 'string' ||
        !CARD_TOKEN.test(p.paymentMethod.token) ||
        typeof p.paymentMethod.last4 !== 'string' ||
        !LAST4.test(p.paymentMethod.last4)
      )
        return rejectCommand(
          'payment.authorize needs { orderId, amountCents, paymentMethod: { token, last4 } }',
        );
      const { token, last4 } = p.paymentMethod;
      const declined = token.startsWith('tok_declined');
      const row =
        (await insertAuthorization(manager, {
          idempotency_key: command.idempotencyKey,
          saga_id: command.sagaId,
          order_id: p.orderId,
          authorization_id: declined ? null : `auth-${randomUUID()}`,
          amount_cents: p.amountCents ?? null,
          card_last4: last4,
          status: declined ? 'declined' : 'authorized',
          reason: declined ? `card ending ${last4} was declined` : null,
        })) ?? (await findAuthorization(manager, command.idempotencyKey));
      return answer(row, command.idempotencyKey);
    }

    /**
     * Voids the authorization made under `authorizationKey`. Also a success when there is none: the
     * saga compensates a timed-out authorize whose outcome it does not know. Then a tombstone is
     * recorded first, so an authorize arriving late for that key is refused instead of charging.
     */
    @SagaCommandHandler('payment.void', on)
    async void(command: ReceivedSagaCommand, { manager }: InboxContext) {
      const p = command.payload as Partial<{ orderId: string; authorizationKey: string }>;
      if (typeof p?.orderId !== 'string' || typeof p.authorizationKey !== 'string')
        return rejectCommand('payment.void needs { orderId, authorizationKey }');
      // Tombstone first: if an authorize for the key is committing concurrently, this waits for it
      // and inserts nothing, and the UPDATE below (a new snapshot) then sees and voids it.
      const tombstone = await insertAuthorization(manager, {
        idempotency_key: p.authorizationKey,
        saga_id: command.sagaId,
        order_id: p.orderId,
        authorization_id: null,
        amount_cents: null,
        card_last4: null,
        status: 'tombstone',
        reason: 'voided before any authorization arrived',
      });
      if (tombstone) return { voided: false };
      const voided = await voidAuthorization(manager, p.authorizationKey);
      return { voided: voided !== undefined };
    }
  }
  return PaymentCommandHandlers;
}

function answer(row: AuthorizationRow | undefined, key: string) {
  if (row?.status === 'authorized' && row.authorization_id)
    return { authorization: row.authorization_id };
  return rejectCommand(
    row?.status === 'declined'
      ? (row.reason ?? 'declined')
      : row?.status === 'tombstone' || row?.status === 'voided'
        ? `authorization ${key} was voided`
        : `authorization ${key} has no outcome`,
  );
}
