import { Controller, Get, Res, type DynamicModule } from '@nestjs/common';
import { PrometheusController, PrometheusModule } from '@willsoto/nestjs-prometheus';
import { SageHealthModule } from '@sage/saga-outbox/health';
import { sagePinoParams, SageEventLogModule } from '@sage/saga-outbox/logging';
import { SageMetricsModule } from '@sage/saga-outbox/metrics';
import { LoggerModule } from 'nestjs-pino';
import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * Observability of a sample service: `/metrics` (Prometheus, Sage's metrics plus Node's defaults),
 * `/health/live` and `/health/ready` (terminus), JSON logs through nestjs-pino with `traceId` on
 * every line, and Sage's event logs.
 *
 * Each app gets its own registry (not prom-client's global one), so several apps can run in one
 * process (the e2e tests, the demo) without their metric names colliding.
 */
export function sampleObservability(service: string): DynamicModule[] {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });

  @Controller()
  class MetricsController extends PrometheusController {
    @Get()
    override async index(
      @Res({ passthrough: true }) response: { header(name: string, value: string): unknown },
    ): Promise<string> {
      response.header('Content-Type', registry.contentType);
      return registry.metrics();
    }
  }

  return [
    PrometheusModule.register({
      controller: MetricsController,
      defaultMetrics: { enabled: false },
    }),
    SageMetricsModule.forRoot({ registry }),
    SageHealthModule.forRoot({}),
    LoggerModule.forRoot(sagePinoParams({ service })),
    { module: SageEventLogModule },
  ];
}
