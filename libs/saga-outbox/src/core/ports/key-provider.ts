/**
 * Secret keys for signing messages, by id. Several keys may be held at once (rotation): messages
 * are signed with the active one and verified with whichever one their `sage-signature-key` names,
 * so a retired key keeps verifying what is still in flight while new writes use the new key.
 *
 * Implementations: `signingKeys()` (keys given in code) and `signingKeysFromEnv()` (environment or
 * mounted files). Both are synchronous: keys are loaded once; a provider of your own may reload
 * them (e.g. watch a file) as long as its answers stay synchronous.
 */
export interface KeyProvider {
  /** The id of the key new messages are signed with. */
  activeKeyId(): string;
  /** The key of id `id`, or undefined when this provider holds no such key. */
  key(id: string): Uint8Array | undefined;
}
