/**
 * `@sage/saga-outbox/console`: the operator console, a Nest module serving server-rendered pages
 * (sagas and their graphs, dead letters, relay and health) under a path of the app. Needs
 * `@nestjs/platform-express`.
 *
 * @packageDocumentation
 */
export { SageConsoleModule } from './nest/console/sage-console.module';
export type {
  SageConsoleModuleOptions,
  SageConsoleAccess,
  SageConsoleRequest,
} from './nest/console/console.options';
export {
  ConsoleAccessPolicyMissingError,
  ConsoleSageNotFoundError,
} from './nest/console/console-errors';
