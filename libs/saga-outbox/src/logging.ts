/**
 * `@sage/saga-outbox/logging`: JSON logs with stable event keys through nestjs-pino. Needs
 * `nestjs-pino`, `pino` and `pino-http`; trace ids on each line when `@opentelemetry/api` is installed.
 *
 * @packageDocumentation
 */
export {
  SageEventLog,
  SageEventLogModule,
  SageEventLogService,
  sagePinoParams,
  traceLogFields,
} from './nest/observability/sage-logging';
