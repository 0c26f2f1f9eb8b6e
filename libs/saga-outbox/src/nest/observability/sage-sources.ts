import type { Type } from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';
import type { Broker } from '../../core/ports/broker';
import { SagaEngine } from '../../core/saga/saga-engine';
import { PostgresObservabilityProbe } from '../../persistence/postgres/postgres-observability-probe';
import { InboxMaintenance } from '../inbox/inbox.providers';
import { InboxService } from '../inbox/inbox.service';
import { OUTBOX_BROKER, OutboxRelayService } from '../outbox/outbox.providers';
import { SagaRetentionProvider } from '../saga-retention.provider';
import { SageDatabase } from '../sage-database';

/**
 * What Sage runs in this application, found wherever SagaOutboxModule or OutboxRelayModule put it
 * (`strict: false`), so the observability modules need no change to those modules' exports and
 * work in a full service as well as in a relay-only process. Absent parts are undefined.
 */
export interface SageParts {
  database?: SageDatabase;
  probe?: PostgresObservabilityProbe;
  engine?: SagaEngine<unknown>;
  inbox?: InboxService;
  outbox?: OutboxRelayService;
  broker?: Broker;
  inboxMaintenance?: InboxMaintenance;
  sagaRetention?: SagaRetentionProvider;
}

export function findSageParts(moduleRef: ModuleRef): SageParts {
  const find = <T>(token: Type<unknown> | symbol): T | undefined => {
    try {
      const found: T | null = moduleRef.get<unknown, T>(token, { strict: false });
      return found ?? undefined;
    } catch {
      return undefined; // not provided in this application
    }
  };
  const database = find<SageDatabase>(SageDatabase);
  return {
    database,
    probe: database
      ? new PostgresObservabilityProbe(database.dataSource, { schema: database.schema })
      : undefined,
    engine: find<SagaEngine<unknown>>(SagaEngine),
    inbox: find<InboxService>(InboxService),
    outbox: find<OutboxRelayService>(OutboxRelayService),
    broker: find<Broker>(OUTBOX_BROKER),
    inboxMaintenance: find<InboxMaintenance>(InboxMaintenance),
    sagaRetention: find<SagaRetentionProvider>(SagaRetentionProvider),
  };
}
