import type { OptionSpec } from '../command';

export const STALLED_AFTER: OptionSpec = {
  type: 'string',
  value: 'SECONDS',
  description:
    'a live saga due for a worker (unowned, lease expired, wake time passed) for longer than this counts as stalled (default 60)',
};

export const LIMIT = (fallback: number): OptionSpec => ({
  type: 'string',
  value: 'N',
  description: `at most N rows, 1-1000 (default ${fallback})`,
});

/** Where the runbooks live, for hints. */
export const RUNBOOKS = 'docs/runbooks';
