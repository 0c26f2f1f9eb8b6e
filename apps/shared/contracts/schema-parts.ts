/**
 * JSON Schema (draft 2020-12) pieces the sample contracts share, so a field means the same thing in
 * every message that carries it. The patterns are the ones the services' own input checks use
 * (apps/order-service/src/orders/order.types.ts, place-order.dto.ts).
 */

/** An order id (`ord-` and the idempotency key or a UUID). */
export const orderIdSchema = { type: 'string', minLength: 1, maxLength: 200 } as const;

/** The data subject's id in the customer system (what an erasure is asked for). */
export const customerIdSchema = { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,64}$' } as const;

/**
 * An ISO 4217 code. A pattern, not an enum: the API takes any code, and which ones a shop sells in
 * is its policy, not the message's shape (and narrowing an enum later is a breaking change).
 */
export const currencySchema = { type: 'string', pattern: '^[A-Z]{3}$' } as const;

/** An amount in the currency's minor unit (cents), as the API bounds it. */
export const amountMinorSchema = { type: 'integer', minimum: 0, maximum: 100_000_000 } as const;

/** The last four digits of a card, to show "Visa ···4242": never more of the number. */
export const last4Schema = { type: 'string', pattern: '^[0-9]{4}$' } as const;

/** A card token the payment provider issued (sample convention `tok_…`), never a card number. */
export const cardTokenSchema = { type: 'string', pattern: '^tok_[A-Za-z0-9_]{1,100}$' } as const;

/** An authorization id payment-service answers `payment.authorize` with. */
export const authorizationIdSchema = {
  type: 'string',
  pattern: '^auth-[A-Za-z0-9_-]{1,128}$',
} as const;

/** The customer an order is for: `name` and `email` are personal data (encrypted on the wire). */
export const customerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'name', 'email'],
  properties: {
    id: customerIdSchema,
    name: { type: 'string', minLength: 1, maxLength: 100 },
    email: { type: 'string', format: 'email', maxLength: 254 },
  },
} as const;
