import type { ModuleRef } from '@nestjs/core';
import type { EntityManager } from 'typeorm';
import { OutboxTransactionRequiredError } from '../../core/outbox/outbox-errors';

/** What we use of `@nestjs-cls/transactional`'s TransactionHost (typed here: the package is optional). */
interface TransactionHostLike {
  isTransactionActive(): boolean;
  readonly tx: unknown;
}

interface ClsTransactionalExports {
  TransactionHost: abstract new (...args: never[]) => TransactionHostLike;
}

/** undefined: not tried yet; null: not installed (or not loadable) in this app. */
let clsTransactional: ClsTransactionalExports | null | undefined;

/**
 * Loads `@nestjs-cls/transactional` if the app has it. It is an optional peer dependency: apps
 * without it pass `{ manager }` (or bind OUTBOX_AMBIENT_TRANSACTION) and must still start.
 */
function loadClsTransactional(): ClsTransactionalExports | null {
  if (clsTransactional !== undefined) return clsTransactional;
  try {
    // A guarded require, not an import: the package may be absent. Resolved from the app's
    // node_modules, so TransactionHost is the very class the app's ClsModule registered.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    clsTransactional = require('@nestjs-cls/transactional') as ClsTransactionalExports;
  } catch {
    clsTransactional = null;
  }
  return clsTransactional;
}

/**
 * The current `@nestjs-cls/transactional` transaction (TypeORM adapter), found without the library
 * calling `ClsModule.forRoot()` or depending on the package: the app's `TransactionHost` is looked
 * up lazily through the ModuleRef (the plugin registers it globally), on the first publish
 * without a manager. No package, no ClsModule with ClsPluginTransactional, or no active
 * transaction → undefined (the publisher then throws OutboxTransactionRequiredError).
 */
export class ClsAmbientTransaction {
  private host: TransactionHostLike | undefined;

  constructor(private readonly moduleRef: ModuleRef) {}

  /** The active transaction's EntityManager, or undefined outside a transaction. */
  current(): EntityManager | undefined {
    const host = this.resolveHost();
    if (!host?.isTransactionActive()) return undefined;
    const tx = host.tx;
    if (!isEntityManager(tx)) {
      throw new OutboxTransactionRequiredError(
        'the active @nestjs-cls/transactional transaction is not a TypeORM one: register ' +
          'ClsPluginTransactional with TransactionalAdapterTypeOrm, or pass { manager }',
      );
    }
    return tx;
  }

  private resolveHost(): TransactionHostLike | undefined {
    if (this.host) return this.host;
    const cls = loadClsTransactional();
    if (!cls) return undefined;
    try {
      this.host = this.moduleRef.get(cls.TransactionHost, { strict: false });
    } catch {
      // Not registered (no ClsModule with ClsPluginTransactional): not cached, so an app that
      // registers it later (a lazily loaded module) is picked up on the next publish.
      return undefined;
    }
    return this.host;
  }
}

function isEntityManager(value: unknown): value is EntityManager {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as { transaction?: unknown; query?: unknown };
  return typeof m.transaction === 'function' && typeof m.query === 'function';
}
