import { defineContract } from '@sage/saga-outbox';
import {
  amountMinorSchema,
  authorizationIdSchema,
  cardTokenSchema,
  currencySchema,
  customerIdSchema,
  last4Schema,
  orderIdSchema,
} from './schema-parts';

/** Where order-service sends payment commands (`sampleTopology().paymentCommands`), for AsyncAPI. */
export const PAYMENT_COMMANDS_DESTINATION = 'payment.commands';

/**
 * `payment.authorize`: the order saga's `authorize-payment` step asks payment-service to authorize
 * the order's amount on the customer's card token (encrypted under the customer's key on the wire;
 * the contract checks it decrypted). Answered with the authorization id, or a rejection (declined).
 */
export const paymentAuthorizeV1 = defineContract({
  type: 'payment.authorize',
  version: 1,
  kind: 'command',
  destination: PAYMENT_COMMANDS_DESTINATION,
  description:
    "Authorize an order's amount on the customer's tokenised card. Resent with the same idempotency key after a reply timeout.",
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['orderId', 'customerId', 'amountCents', 'currency', 'paymentMethod'],
    properties: {
      orderId: orderIdSchema,
      // Whose card it is: the data subject the token is encrypted for.
      customerId: customerIdSchema,
      amountCents: amountMinorSchema,
      currency: currencySchema,
      paymentMethod: {
        type: 'object',
        additionalProperties: false,
        required: ['token', 'last4'],
        properties: { token: cardTokenSchema, last4: last4Schema },
      },
    },
  },
  // The success reply's result (the `authorize-payment` step's result).
  reply: {
    type: 'object',
    additionalProperties: false,
    required: ['authorization'],
    properties: { authorization: authorizationIdSchema },
  },
});
