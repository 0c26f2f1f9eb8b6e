import { SagaOutboxError } from '../../core/errors';

/**
 * `SageConsoleModule.forRoot()` without an access policy: the console shows sagas' inputs and can
 * change dead letters, so it never starts open to whoever reaches the app.
 */
export class ConsoleAccessPolicyMissingError extends SagaOutboxError {
  constructor() {
    super(
      'CONSOLE_ACCESS_POLICY_MISSING',
      'SageConsoleModule needs an access policy: pass SageConsoleModule.forRoot({ access: (req) => ... }), ' +
        'a function of the request that returns false (refused), true (may look) or ' +
        '{ operator: "<name>", canAct: true } (may also replay and discard, named in the audit log). ' +
        'The console does not start without one.',
    );
  }
}

/** The console was imported into an application where Sage runs no database. */
export class ConsoleSageNotFoundError extends SagaOutboxError {
  constructor() {
    super(
      'CONSOLE_SAGE_NOT_FOUND',
      'SageConsoleModule found no Sage database in this application: import SagaOutboxModule.forRoot(...) ' +
        '(or OutboxRelayModule) in the same application as SageConsoleModule.',
    );
  }
}
