import { InvalidOptionsError } from '../errors';
import type { DeliveredMessage } from '../ports/broker';
import type { KeyProvider } from '../ports/key-provider';
import { verifyMessageSignature } from './message-signature';

/**
 * Message signing (`signing` module option). With `keys`, every message this service writes to
 * its outbox (events, saga commands, saga replies) is signed with the active key when it is
 * written, so the relay needs no key. With `require: true`, the saga reply consumer and every
 * `@SagaCommandHandler` destination refuse (dead-letter at once, never handle) a message that is
 * unsigned, signed with a key id `keys` does not hold, or whose signature does not match.
 */
export interface MessageSigningOptions {
  /** The keys: `signingKeys({ active, keys })` or `signingKeysFromEnv()`, or a KeyProvider of your own. */
  keys: KeyProvider;
  /**
   * Refuse what is not correctly signed. Default false: messages are signed but not checked (turn
   * it on once every producer signs: the rollout order is keys everywhere, then `require`).
   */
  require?: boolean;
}

/** Checks the `signing` option at the module boundary. */
export function validateSigningOptions(signing: unknown): MessageSigningOptions | undefined {
  if (signing === undefined) return undefined;
  if (typeof signing !== 'object' || signing === null)
    throw new InvalidOptionsError('signing', 'must be { keys, require? }');
  const s = signing as Partial<MessageSigningOptions>;
  const keys = s.keys as Partial<KeyProvider> | undefined;
  if (
    typeof keys !== 'object' ||
    keys === null ||
    typeof keys.activeKeyId !== 'function' ||
    typeof keys.key !== 'function'
  )
    throw new InvalidOptionsError(
      'signing.keys',
      'must be a KeyProvider ({ activeKeyId(), key(id) }): signingKeys({ active, keys }) or signingKeysFromEnv()',
    );
  if (s.require !== undefined && typeof s.require !== 'boolean')
    throw new InvalidOptionsError('signing.require', `must be a boolean, got ${typeof s.require}`);
  const active = keys.activeKeyId();
  if (typeof active !== 'string' || !keys.key(active))
    throw new InvalidOptionsError(
      'signing.keys',
      'activeKeyId() names a key the provider does not hold; nothing could be signed',
    );
  return s as MessageSigningOptions;
}

/** The `verify` of an inbox endpoint under `signing`: undefined when signatures are not required. */
export function signatureCheck(
  signing: MessageSigningOptions | undefined,
): ((message: DeliveredMessage) => void) | undefined {
  if (!signing?.require) return undefined;
  const keys = signing.keys;
  return (message) => verifyMessageSignature(message, keys);
}
