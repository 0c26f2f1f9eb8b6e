/**
 * `@sage/saga-outbox/logging`: JSON logs with stable event keys through nestjs-pino. Needs
 * `nestjs-pino`, `pino` and `pino-http`; trace ids on each line when `@opentelemetry/api` is installed.
 *
 * @packageDocumentation
 */
export {
  SAGE_REDACTED_HEADERS,
  SageEventLog,
  SageEventLogModule,
  SageEventLogService,
  sagePinoParams,
  traceLogFields,
  type SagePinoOptions,
} from './nest/observability/sage-logging';
