/** Inbox tuning (InboxModuleOptions); optional. */
export const INBOX_OPTIONS = Symbol('SAGE_INBOX_OPTIONS');

export interface InboxModuleOptions {
  /** Attempts (first delivery included) before a failing message is dead-lettered. Default 5. */
  maxAttempts?: number;
  /**
   * Subscribe the `@IdempotentHandler` methods to the broker on application bootstrap. Default
   * true; false leaves it to `IdempotentHandlerExplorer.subscribeAll()` (e.g. a process that only
   * produces, or tests that start consuming later).
   */
  subscribe?: boolean;
}
