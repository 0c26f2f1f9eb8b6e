import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { OutboxRelayModuleOptions } from './outbox-relay.options';

export const {
  ConfigurableModuleClass: OutboxRelayConfigurableModule,
  MODULE_OPTIONS_TOKEN: OUTBOX_RELAY_MODULE_OPTIONS,
} = new ConfigurableModuleBuilder<OutboxRelayModuleOptions>({ moduleName: 'OutboxRelay' })
  .setClassMethodName('forRoot')
  // Global by default, like SagaOutboxModule; `isGlobal: false` keeps it local to its importers.
  .setExtras({ isGlobal: true }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal !== false,
  }))
  .build();
