import { defineContract } from '@sage/saga-outbox';
import { PAYMENT_COMMANDS_DESTINATION } from './payment-authorize.contract';
import { orderIdSchema } from './schema-parts';

/**
 * `payment.void`: the compensation of `payment.authorize`. Voids the authorization made under
 * `authorizationKey` (the authorize command's idempotency key, `sagaId:authorize-payment`), or, when
 * none was made, records that a late authorize for that key must be refused.
 */
export const paymentVoidV1 = defineContract({
  type: 'payment.void',
  version: 1,
  kind: 'command',
  destination: PAYMENT_COMMANDS_DESTINATION,
  description: "Void the order's card authorization (the compensation of payment.authorize).",
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['orderId', 'authorizationKey'],
    properties: {
      orderId: orderIdSchema,
      authorizationKey: { type: 'string', minLength: 1, maxLength: 600 },
    },
  },
  // `voided`: whether an authorization existed and was voided (false: none had been made).
  reply: {
    type: 'object',
    additionalProperties: false,
    required: ['voided'],
    properties: { voided: { type: 'boolean' } },
  },
});
