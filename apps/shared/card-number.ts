import { ValidateBy, type ValidationOptions } from 'class-validator';

/**
 * What a card number (PAN) looks like in text: 13 to 19 digits, run together or grouped by single
 * spaces or dashes (`4242 4242 4242 4242`), not part of a longer run of digits. No Luhn check: a
 * mistyped card number is still a card number, and a check that passes one number in ten would make
 * the refusal random.
 */
// eslint-disable-next-line security/detect-unsafe-regex -- each repetition must consume one digit and repeats at most 18 times: linear, no catastrophic backtracking
export const CARD_NUMBER_PATTERN = /(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)/;

/** The answer to a request that carries something shaped like a card number (never the value). */
export const CARD_NUMBER_REFUSED =
  'card numbers are not accepted: tokenise the card with the payment provider on the client and send paymentMethod: { token, last4 }';

/**
 * UUIDs (order ids, customer ids, idempotency keys) are not card numbers, though their hex groups
 * are sometimes all digits: about one random UUID in a hundred holds 13 digits joined by dashes.
 */
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/** Whether `text` contains something shaped like a card number (CARD_NUMBER_PATTERN), UUIDs aside. */
export function looksLikeCardNumber(text: string): boolean {
  return CARD_NUMBER_PATTERN.test(text.replace(UUID, ' '));
}

/**
 * The path (`customer.name`, `items[2]`) of the first string in a JSON-like value that contains
 * something shaped like a card number, or undefined. Keys are checked too.
 */
export function findCardNumber(value: unknown, path = ''): string | undefined {
  if (typeof value === 'string') return looksLikeCardNumber(value) ? path || '(value)' : undefined;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = findCardNumber(item, `${path}[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      const at = path ? `${path}.${key}` : key;
      if (looksLikeCardNumber(key)) return at;
      const found = findCardNumber(item, at);
      if (found) return found;
    }
  }
  return undefined;
}

/**
 * class-validator: the string property holds nothing shaped like a card number (CARD_NUMBER_PATTERN),
 * so a PAN pasted into the wrong field (a name, an email, a token) is refused with a 400 like a
 * `card` field is, before anything is stored or logged. The value is never echoed.
 */
export function NoCardNumber(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'noCardNumber',
      validator: {
        validate: (value: unknown) => typeof value !== 'string' || !looksLikeCardNumber(value),
        defaultMessage: () => `$property: ${CARD_NUMBER_REFUSED}`,
      },
    },
    options,
  );
}

/**
 * class-validator: the property must be absent. For the names a card number is usually sent under
 * (`card`, `cardNumber`, `pan`, `number`, `cvc`): the request is refused with CARD_NUMBER_REFUSED,
 * a clearer answer than "property card should not exist".
 */
export function NeverAccepted(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'neverAccepted',
      validator: {
        validate: (value: unknown) => value === undefined,
        defaultMessage: () => `$property: ${CARD_NUMBER_REFUSED}`,
      },
    },
    options,
  );
}
