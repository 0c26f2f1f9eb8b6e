/**
 * OpenTelemetry for the sample services, to preload before the app:
 *
 *   OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=order-service \
 *     node -r ts-node/register/transpile-only -r tsconfig-paths/register \
 *       -r ./apps/shared/tracing.ts apps/order-service/src/main.ts
 *
 * Without OTEL_EXPORTER_OTLP_ENDPOINT it does nothing, and Sage's spans stay no-ops.
 * docs/observability.md explains the spans.
 */
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { NodeSDK } from '@opentelemetry/sdk-node';

if (process.env.OTEL_EXPORTER_OTLP_ENDPOINT) {
  const sdk = new NodeSDK({
    serviceName: process.env.OTEL_SERVICE_NAME ?? 'sage-sample',
    // Reads OTEL_EXPORTER_OTLP_ENDPOINT (…/v1/traces is appended).
    traceExporter: new OTLPTraceExporter(),
  });
  sdk.start();
  process.once('beforeExit', () => void sdk.shutdown());
}
