import { Module, type DynamicModule } from '@nestjs/common';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { SageHealthModule } from '../nest/observability/sage-health.module';
import { SageEventLogModule, sagePinoParams } from '../nest/observability/sage-logging';
import { SageMetricsModule } from '../nest/observability/sage-metrics.module';
import { OutboxRelayModule } from '../nest/relay/outbox-relay.module';
import type { OutboxRelayModuleOptions } from '../nest/relay/outbox-relay.options';
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
