import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { SagaOutboxModuleOptions } from './saga-outbox.options';

/**
 * `forRoot` / `forRootAsync`. Global by default, as `TypeOrmModule.forRoot` and `BullModule.forRoot`
 * are: import it once in the root module and inject `SagaService`, `OutboxRepository`,
 * `InboxService`… in any module. `isGlobal: false` keeps it local: then only modules that import it
 * (or a module that re-exports it) can inject its providers.
 */
export const {
  ConfigurableModuleClass: SagaOutboxConfigurableModule,
  MODULE_OPTIONS_TOKEN: SAGA_OUTBOX_OPTIONS,
  OPTIONS_TYPE: SAGA_OUTBOX_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: SAGA_OUTBOX_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<SagaOutboxModuleOptions>({ moduleName: 'SagaOutbox' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: true }, (definition, extras) => ({
    ...definition,
    // Only an explicit `false` opts out (`isGlobal: undefined` keeps the default).
    global: extras.isGlobal !== false,
  }))
  .build();
