import { Injectable, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { OutboxDeadLetters } from '../../core/outbox/outbox-dead-letters';
import type { LoopStats } from '../../core/loop';
import type { SagaDefinition } from '../../core/saga/saga-definition';
import { PostgresInboxStore } from '../../persistence/postgres/postgres-inbox-store';
import { PostgresOperatorQueries } from '../../persistence/postgres/postgres-operator-queries';
import { PostgresOutboxStore } from '../../persistence/postgres/postgres-outbox-store';
import { PostgresSagaStore } from '../../persistence/postgres/postgres-saga-store';
import { PostgresSagaOperatorActions } from '../../persistence/postgres/postgres-saga-operator-actions';
import { findSageParts, type SageParts } from '../observability/sage-sources';
import { ConsoleSageNotFoundError } from './console-errors';

/** The relay running in this process, as the relay page shows it. */
export interface ConsoleRelayView {
  relayId: string;
  mode: 'polling' | 'wal';
  /** The WAL relay: whether it holds the slot (the leader); the polling relay: always true. */
  leader: boolean;
  loop: LoopStats;
  /** The relay's counters (sent, retried, dead-lettered, …), as numbers. */
  counters: Record<string, number>;
}

/**
 * What the console reads and changes, built exactly as the `sage` CLI builds its connection
 * (cli/connection.ts): the read-only PostgresOperatorQueries, the saga store's `load`, and the
 * outbox / inbox stores' operator methods, over the application's Sage database. An action builds
 * its store with the operator as `auditActor`, as the CLI's `--operator` does, so the audit log
 * names the person, not the database role.
 */
@Injectable()
export class ConsoleData implements OnModuleInit {
  private parts!: SageParts;
  private schema!: string;
  operator!: PostgresOperatorQueries;
  sagas!: PostgresSagaStore;
  outbox!: PostgresOutboxStore;
  inbox!: PostgresInboxStore;

  constructor(private readonly moduleRef: ModuleRef) {}

  onModuleInit(): void {
    this.parts = findSageParts(this.moduleRef);
    const db = this.parts.database;
    if (!db) throw new ConsoleSageNotFoundError();
    this.schema = db.schema;
    const options = { schema: db.schema };
    this.operator = new PostgresOperatorQueries(db.dataSource, options);
    this.sagas = new PostgresSagaStore(db.dataSource, options);
    this.outbox = new PostgresOutboxStore(db.dataSource, options);
    this.inbox = new PostgresInboxStore(db.dataSource, options);
  }

  /** Outbox dead-letter operations whose audit entries name `operator` (undefined: the DB role). */
  deadLettersAs(operator: string | undefined): OutboxDeadLetters {
    const db = this.parts.database!;
    return new OutboxDeadLetters(
      new PostgresOutboxStore(db.dataSource, { schema: this.schema, auditActor: operator }),
    );
  }

  /** The inbox store whose audit entries name `operator`. */
  inboxAs(operator: string | undefined): PostgresInboxStore {
    const db = this.parts.database!;
    return new PostgresInboxStore(db.dataSource, { schema: this.schema, auditActor: operator });
  }

  /** Saga retry / compensate (as `sage sagas retry|compensate`), audited as `operator`. */
  sagaActionsAs(operator: string | undefined): PostgresSagaOperatorActions {
    const db = this.parts.database!;
    return new PostgresSagaOperatorActions(db.dataSource, {
      schema: this.schema,
      auditActor: operator,
    });
  }

  /** The definition registered in this application under `name`, if any. */
  definition(name: string): SagaDefinition<unknown, unknown> | undefined {
    return this.parts.engine?.definition(name);
  }

  /** The saga names registered in this application (for the list's name filter). */
  sagaNames(): readonly string[] {
    return this.parts.engine?.sagaNames ?? [];
  }

  /** The relay loop of this process, when it runs one. */
  relay(): ConsoleRelayView | undefined {
    const outbox = this.parts.outbox;
    const polling = outbox?.relay;
    const wal = outbox?.walRelay;
    const counters = (stats: object): Record<string, number> =>
      Object.fromEntries(
        Object.entries(stats).filter((e): e is [string, number] => typeof e[1] === 'number'),
      );
    if (polling)
      return {
        relayId: polling.relayId,
        mode: 'polling',
        leader: true,
        loop: polling.stats.loop,
        counters: counters(polling.stats),
      };
    if (wal) {
      const stats = wal.stats;
      return {
        relayId: wal.relayId,
        mode: 'wal',
        leader: stats.leader,
        loop: stats.loop,
        counters: counters(stats),
      };
    }
    return undefined;
  }
}
