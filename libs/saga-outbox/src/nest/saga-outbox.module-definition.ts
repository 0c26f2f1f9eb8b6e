import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { SagaOutboxModuleOptions } from './saga-outbox.options';

export const {
  ConfigurableModuleClass: SagaOutboxConfigurableModule,
  MODULE_OPTIONS_TOKEN: SAGA_OUTBOX_OPTIONS,
  OPTIONS_TYPE: SAGA_OUTBOX_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: SAGA_OUTBOX_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<SagaOutboxModuleOptions>({ moduleName: 'SagaOutbox' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal,
  }))
  .build();
