import type { SageLogger } from '../../core/ports/logger';
import { failureCode, HealthFailureReporter } from './health-failure';

function recordingLogger() {
  const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    lines.push({ level, message, fields });
  const logger: SageLogger = {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
  return { logger, lines };
}

const wrongPassword = Object.assign(
  new Error('password authentication failed for user "app" (postgres://app:hunter2@db:5432/app)'),
  { code: '28P01' },
);

describe('HealthFailureReporter', () => {
  it('answers a generic reason and the code, and logs the raw text once per change of state', () => {
    const { logger, lines } = recordingLogger();
    const failures = new HealthFailureReporter(logger, false);
    for (let probe = 0; probe < 3; probe++)
      expect(failures.down('sage_database', 'database unreachable', wrongPassword)).toEqual({
        message: 'database unreachable',
        code: '28P01',
      });
    failures.up('sage_database');
    failures.up('sage_database');
    failures.down('sage_database', 'database unreachable', new Error('connect ECONNREFUSED'));
    expect(lines).toEqual([
      {
        level: 'warn',
        message:
          'health check sage_database down: database unreachable: password authentication failed for user "app" (postgres://***@db:5432/app)',
        fields: {
          event: 'health.check.down',
          check: 'sage_database',
          reason: 'database unreachable',
          code: '28P01',
          error: 'password authentication failed for user "app" (postgres://***@db:5432/app)',
        },
      },
      {
        level: 'info',
        message: 'health check sage_database up again',
        fields: { event: 'health.check.up', check: 'sage_database' },
      },
      expect.objectContaining({ level: 'warn' }) as unknown,
    ]);
    expect(JSON.stringify(lines)).not.toContain('hunter2');
  });

  it('adds the raw text (credentials masked) with exposeErrors', () => {
    const failures = new HealthFailureReporter(recordingLogger().logger, true);
    expect(failures.down('sage_database', 'database unreachable', wrongPassword)).toEqual({
      message: 'database unreachable',
      code: '28P01',
      error: 'password authentication failed for user "app" (postgres://***@db:5432/app)',
    });
  });
});

describe('failureCode', () => {
  it('finds the code on the error, its driverError or its cause chain', () => {
    expect(failureCode(wrongPassword)).toBe('28P01');
    expect(failureCode({ message: 'query failed', driverError: { code: '57P01' } })).toBe('57P01');
    expect(failureCode(new Error('outer', { cause: { code: 'ECONNREFUSED' } }))).toBe(
      'ECONNREFUSED',
    );
    expect(failureCode(new Error('no code'))).toBeUndefined();
    expect(failureCode('detail text')).toBeUndefined();
  });
});
