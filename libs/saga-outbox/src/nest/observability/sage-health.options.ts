import { invalidOption, nonNegativeNumber, optionalPositiveNumber } from '../../core/options';
import type { SageHealthModuleOptions } from './sage-health.indicators';

/**
 * `SageHealthModule.forRoot` options checked once, at import: a wrong type fails the boot with an
 * InvalidOptionsError naming the option, rather than a check that silently never fails (a
 * `failReadiness: 'false'` string is truthy).
 */
export function validateSageHealthOptions(
  options: SageHealthModuleOptions & { controller?: boolean },
): void {
  const at = (path: string) => `SageHealthModule.${path}`;
  optionalPositiveNumber(at('timeoutMs'), options.timeoutMs);
  optionalPositiveNumber(at('relayStaleAfterMs'), options.relayStaleAfterMs);
  const { maxPending, maxOldestAgeSeconds } = options.backlog ?? {};
  if (maxPending !== undefined) nonNegativeNumber(at('backlog.maxPending'), maxPending);
  if (maxOldestAgeSeconds !== undefined)
    nonNegativeNumber(at('backlog.maxOldestAgeSeconds'), maxOldestAgeSeconds);
  optionalBoolean(at('backlog.failReadiness'), options.backlog?.failReadiness);
  optionalBoolean(at('broker.failReadiness'), options.broker?.failReadiness);
  optionalBoolean(at('exposeErrors'), options.exposeErrors);
  optionalBoolean(at('controller'), options.controller);
}

function optionalBoolean(at: string, value: unknown): void {
  if (value === undefined || typeof value === 'boolean') return;
  throw invalidOption(at, `must be true or false, got ${JSON.stringify(value) ?? typeof value}`);
}
