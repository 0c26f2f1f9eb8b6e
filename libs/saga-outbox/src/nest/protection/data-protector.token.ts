/**
 * Injection token of this module's DataProtector (the `dataProtection` option), or null when the
 * option is absent. The saga store, the outbox write path and the inbox subscriptions all use this
 * one instance, so its cache of data-subject keys is shared.
 */
export const DATA_PROTECTOR = Symbol('SAGE_DATA_PROTECTOR');
