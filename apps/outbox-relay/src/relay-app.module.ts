import { Module, type DynamicModule } from '@nestjs/common';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import {
  OutboxRelayModule,
  sagePinoParams,
  SageEventLogModule,
  SageHealthModule,
  SageMetricsModule,
  type OutboxRelayModuleOptions,
} from '@sage/saga-outbox';
import { LoggerModule } from 'nestjs-pino';

/**
 * The standalone relay with its small HTTP server: `/health/live` (the relay loop ticks),
 * `/health/ready` (database, broker, backlog as data) and `/metrics` (prom-client's global
 * registry: one relay per process), JSON logs through nestjs-pino.
 */
@Module({})
export class RelayAppModule {
  static register(relay: OutboxRelayModuleOptions): DynamicModule {
    return {
      module: RelayAppModule,
      imports: [
        OutboxRelayModule.forRoot(relay),
        PrometheusModule.register(),
        SageMetricsModule.forRoot({}),
        SageHealthModule.forRoot({}),
        LoggerModule.forRoot(sagePinoParams({ service: 'outbox-relay' })),
        SageEventLogModule,
      ],
    };
  }
}
