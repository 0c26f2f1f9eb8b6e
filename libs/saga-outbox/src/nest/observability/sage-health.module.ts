import { Controller, Get, Module, type DynamicModule } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import {
  SAGE_HEALTH_OPTIONS,
  SageHealthIndicators,
  type SageHealthModuleOptions,
} from './sage-health.indicators';

/**
 * `GET /health/live`: the process is worth keeping (the relay loop ticks). A failure means restart.
 * `GET /health/ready`: the process can do its work (database and broker reachable; backlog as
 * data). A failure means take it out of rotation until it recovers. 503 with the details when down.
 */
@Controller('health')
export class SageHealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: SageHealthIndicators,
  ) {}

  @Get('live')
  @HealthCheck()
  live() {
    return this.health.check([() => this.indicators.relay()]);
  }

  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([
      () => this.indicators.database(),
      () => this.indicators.broker(),
      () => this.indicators.backlog(),
    ]);
  }
}

/**
 * Terminus health for Sage: liveness and readiness endpoints, and the indicators
 * (SageHealthIndicators) for apps that compose their own checks. Import next to SagaOutboxModule
 * or OutboxRelayModule in an HTTP application:
 *
 * ```ts
 * imports: [SagaOutboxModule.forRoot({ ... }), SageHealthModule.forRoot({ timeoutMs: 2000 })]
 * ```
 * `controller: false` registers the indicators only.
 */
@Module({})
export class SageHealthModule {
  static forRoot(options: SageHealthModuleOptions & { controller?: boolean } = {}): DynamicModule {
    const { controller, ...indicatorOptions } = options;
    return {
      module: SageHealthModule,
      imports: [TerminusModule.forRoot({ errorLogStyle: 'json' })],
      controllers: controller === false ? [] : [SageHealthController],
      providers: [
        { provide: SAGE_HEALTH_OPTIONS, useValue: indicatorOptions },
        SageHealthIndicators,
      ],
      exports: [SageHealthIndicators],
    };
  }
}
