import { Module, type DynamicModule } from '@nestjs/common';
import { ConsoleData } from './console-data';
import { createConsoleController } from './console.controller';
import { ConsoleGuard, SAGE_CONSOLE_OPTIONS } from './console.guard';
import { resolveConsoleOptions, type SageConsoleModuleOptions } from './console.options';

/**
 * The operator console: server-rendered pages under a path of the host app (sagas, one saga's
 * graph and timeline, dead letters, relay and health), reading through the `sage` CLI's read-only
 * operator queries and acting (replay, discard, release) through the CLI's own store methods.
 *
 * ```ts
 * SageConsoleModule.forRoot({
 *   path: '/sage',
 *   access: (req) => (req.user ? { operator: req.user.email, canAct: req.user.isAdmin } : false),
 *   actions: true,
 * })
 * ```
 * Import it beside `SagaOutboxModule` (it uses Sage's database). It does not start without
 * `access`; it is read-only unless `actions: true`. Express only (`@nestjs/platform-express`).
 * `forRoot` only, no `forRootAsync`: the path is needed when the routes are declared; the access
 * function can reach anything it needs through the request (`req.user` from the app's auth).
 */
@Module({})
export class SageConsoleModule {
  static forRoot(options: SageConsoleModuleOptions): DynamicModule {
    const resolved = resolveConsoleOptions(options);
    return {
      module: SageConsoleModule,
      controllers: [createConsoleController(resolved.path)],
      providers: [{ provide: SAGE_CONSOLE_OPTIONS, useValue: resolved }, ConsoleData, ConsoleGuard],
    };
  }
}
