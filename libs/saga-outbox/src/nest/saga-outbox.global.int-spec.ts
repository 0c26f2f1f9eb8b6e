/**
 * `isGlobal`: SagaOutboxModule, OutboxRelayModule and SageMetricsModule are global by default (as
 * TypeOrmModule.forRoot is), so a feature module injects their services without importing them;
 * `isGlobal: false` makes them local, and a feature module that does not import them fails at
 * startup the way Nest always fails for a provider out of reach.
 */
import 'reflect-metadata';
import { Injectable, Module, type DynamicModule, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Registry } from 'prom-client';
import type { DataSource } from 'typeorm';
import { openPostgresDatabase, type OpenedDatabase } from '@test/support/sage-databases';
import {
  InboxService,
  InMemoryBroker,
  OutboxDeadLettersService,
  OutboxRelayModule,
  OutboxRelayService,
  OutboxRepository,
  SagaOutboxModule,
  SagaService,
} from '../index';
import { SageMetricsModule, SageMetricsService } from '../metrics';

@Injectable()
class UsesSagaOutbox {
  constructor(
    readonly sagas: SagaService,
    readonly outbox: OutboxRepository,
    readonly inbox: InboxService,
  ) {}
}

@Injectable()
class UsesRelay {
  constructor(
    readonly relay: OutboxRelayService,
    readonly deadLetters: OutboxDeadLettersService,
  ) {}
}

@Injectable()
class UsesMetrics {
  constructor(readonly metrics: SageMetricsService) {}
}

/** A feature module that imports none of Sage's modules. */
function featureModule(provider: Type<unknown>): Type<unknown> {
  @Module({ providers: [provider], exports: [provider] })
  class FeatureModule {}
  return FeatureModule;
}

async function boot(root: DynamicModule[], provider: Type<unknown>) {
  @Module({ imports: [...root, featureModule(provider)] })
  class AppModule {}
  return NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
}

/** Nest's own message for a dependency out of reach of the feature module. */
const unresolvable = (provider: string, dependency: string, index: number) =>
  new RegExp(
    `Nest can't resolve dependencies of the ${provider} \\(.*\\)\\. Please make sure that the argument ${dependency} at index \\[${index}\\] is available in the FeatureModule (module|context)`,
  );

describe('isGlobal', () => {
  let database: OpenedDatabase;
  let dataSource: DataSource;
  beforeAll(async () => {
    database = await openPostgresDatabase(6);
    dataSource = database.dataSource;
  });
  afterAll(() => database?.close());

  const sagaOutbox = (extra: { isGlobal?: boolean } = {}) =>
    SagaOutboxModule.forRoot({ dataSource, autoStart: false, ...extra });
  const relay = (extra: { isGlobal?: boolean } = {}) =>
    OutboxRelayModule.forRoot({ dataSource, broker: new InMemoryBroker(), ...extra });
  const metrics = (extra: { isGlobal?: boolean } = {}) =>
    SageMetricsModule.forRoot({ registry: new Registry(), ...extra });

  it('SagaOutboxModule is global by default: a feature module injects SagaService, OutboxRepository, InboxService', async () => {
    for (const root of [sagaOutbox(), sagaOutbox({ isGlobal: true })]) {
      const app = await boot([root], UsesSagaOutbox);
      try {
        const feature = app.get(UsesSagaOutbox);
        expect(feature.sagas).toBe(app.get(SagaService));
        expect(feature.outbox).toBe(app.get(OutboxRepository));
        expect(feature.inbox).toBe(app.get(InboxService));
      } finally {
        await app.close();
      }
    }
  });

  it('forRootAsync is global by default too', async () => {
    const app = await boot(
      [SagaOutboxModule.forRootAsync({ useFactory: () => ({ dataSource, autoStart: false }) })],
      UsesSagaOutbox,
    );
    try {
      expect(app.get(UsesSagaOutbox).sagas).toBe(app.get(SagaService));
    } finally {
      await app.close();
    }
  });

  it('SagaOutboxModule with isGlobal: false is out of reach of a module that does not import it', async () => {
    await expect(boot([sagaOutbox({ isGlobal: false })], UsesSagaOutbox)).rejects.toThrow(
      unresolvable('UsesSagaOutbox', 'SagaService', 0),
    );
    await expect(
      boot(
        [
          SagaOutboxModule.forRootAsync({
            isGlobal: false,
            useFactory: () => ({ dataSource, autoStart: false }),
          }),
        ],
        UsesSagaOutbox,
      ),
    ).rejects.toThrow(unresolvable('UsesSagaOutbox', 'SagaService', 0));
  });

  it('OutboxRelayModule: global by default, local with isGlobal: false', async () => {
    const app = await boot([relay()], UsesRelay);
    try {
      expect(app.get(UsesRelay).deadLetters).toBe(app.get(OutboxDeadLettersService));
    } finally {
      await app.close();
    }
    await expect(boot([relay({ isGlobal: false })], UsesRelay)).rejects.toThrow(
      unresolvable('UsesRelay', 'OutboxRelayService', 0),
    );
  });

  it('SageMetricsModule: global by default, local with isGlobal: false', async () => {
    const app = await boot([sagaOutbox(), metrics()], UsesMetrics);
    try {
      expect(app.get(UsesMetrics).metrics).toBe(app.get(SageMetricsService));
    } finally {
      await app.close();
    }
    await expect(boot([sagaOutbox(), metrics({ isGlobal: false })], UsesMetrics)).rejects.toThrow(
      unresolvable('UsesMetrics', 'SageMetricsService', 0),
    );
  });
});
