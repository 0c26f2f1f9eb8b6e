/**
 * `@sage/saga-outbox/health`: liveness and readiness checks (`@nestjs/terminus`) for the database, the
 * broker, the relay and the backlog. Needs `@nestjs/terminus`.
 *
 * @packageDocumentation
 */
export { SageHealthModule, SageHealthController } from './nest/observability/sage-health.module';
export {
  SageHealthIndicators,
  SAGE_HEALTH_OPTIONS,
} from './nest/observability/sage-health.indicators';
export type { SageHealthModuleOptions } from './nest/observability/sage-health.indicators';
export { ProbeTimeoutError } from './nest/observability/with-timeout';
