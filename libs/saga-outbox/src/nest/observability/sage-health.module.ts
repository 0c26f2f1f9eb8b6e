import { Controller, Get, Module, type DynamicModule } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import {
  SAGE_HEALTH_OPTIONS,
  SageHealthIndicators,
  type SageHealthModuleOptions,
} from './sage-health.indicators';
import { validateSageHealthOptions } from './sage-health.options';

/**
 * `GET /health/live`: the process is worth keeping (the relay loop ticks; it keeps ticking while
 * the broker is down). A failure means restart.
 * `GET /health/ready`: the process can do its work: its database answers. The broker and the
 * backlog are reported as data (`reachable`, `pending`, `exceeded`), because the outbox absorbs a
 * broker outage; `broker.failReadiness` / `backlog.failReadiness` make them fail it. A failure
 * means take the instance out of rotation until it recovers. 503 with the details when down: a
 * generic `message` (`database unreachable`) and the error's `code`; the raw error text is in the
 * logs, and in the body only with `exposeErrors: true`.
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
 * `controller: false` registers the indicators only. A broker outage does not fail readiness unless
 * `broker: { failReadiness: true }` (docs/observability.md, "Readiness"). Raw error texts stay out
 * of the bodies unless `exposeErrors: true`.
 */
@Module({})
export class SageHealthModule {
  static forRoot(options: SageHealthModuleOptions & { controller?: boolean } = {}): DynamicModule {
    validateSageHealthOptions(options);
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
