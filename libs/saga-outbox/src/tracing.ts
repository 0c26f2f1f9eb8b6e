/**
 * `@sage/saga-outbox/tracing`: OpenTelemetry spans for sagas, steps, outbox writes, publishes and
 * inbox handling, with `traceparent` carried through the broker. Opt in with
 * `SagaOutboxModule.forRoot({ ..., tracing: openTelemetryTracing() })`. Needs `@opentelemetry/api`
 * and `@opentelemetry/core`; register an OpenTelemetry SDK for the spans to be exported.
 *
 * @packageDocumentation
 */
export {
  openTelemetryTracing,
  SAGE_TRACER_NAME,
  withTraceHeaders,
  traceContextFrom,
} from './nest/observability/sage-tracing';
