import { InvalidOptionsError } from '../core/errors';
import { DEFAULT_SHUTDOWN_TIMEOUT_MS, readRelayConfig } from './relay-config';

const base = { DATABASE_URL: 'postgres://u:p@db:5432/app', SAGE_BROKER_URL: 'memory://' };

describe('readRelayConfig', () => {
  it('reads the environment, with defaults', () => {
    expect(readRelayConfig(base)).toEqual({
      databaseUrl: base.DATABASE_URL,
      brokerUrl: 'memory://',
      schema: undefined,
      runMigrations: true,
      shutdownTimeoutMs: DEFAULT_SHUTDOWN_TIMEOUT_MS,
      mode: 'polling',
      dbRetryAttempts: 9,
      dbRetryDelayMs: 3000,
      postgres: { ssl: undefined, password: undefined },
      nats: undefined,
    });
    expect(
      readRelayConfig({
        ...base,
        SAGE_SCHEMA: 'outbox',
        SAGE_RUN_MIGRATIONS: 'false',
        SAGE_RELAY_SHUTDOWN_TIMEOUT_MS: '2500',
        SAGE_DB_RETRY_ATTEMPTS: '0',
        SAGE_DB_RETRY_DELAY_MS: '250',
      }),
    ).toMatchObject({
      schema: 'outbox',
      runMigrations: false,
      shutdownTimeoutMs: 2500,
      dbRetryAttempts: 0,
      dbRetryDelayMs: 250,
    });
  });

  it('reads the relay mode: the WAL-streaming relay and its slot', () => {
    expect(
      readRelayConfig({ ...base, SAGE_RELAY_MODE: 'WAL', SAGE_RELAY_WAL_SLOT: 'orders_outbox' }),
    ).toMatchObject({ mode: 'wal', walSlot: 'orders_outbox', walMaxWindow: undefined });
    expect(readRelayConfig({ ...base, SAGE_RELAY_WAL_MAX_WINDOW: ' 2000 ' }).walMaxWindow).toBe(
      2000,
    );
    expect(() => readRelayConfig({ ...base, SAGE_RELAY_MODE: 'stream' })).toThrow(
      /SAGE_RELAY_MODE.*must be polling or wal, got "stream"/,
    );
  });

  it.each([
    [{ SAGE_BROKER_URL: 'memory://' }, 'DATABASE_URL'],
    [{ ...base, DATABASE_URL: '  ' }, 'DATABASE_URL'],
    [{ DATABASE_URL: base.DATABASE_URL }, 'SAGE_BROKER_URL'],
    [{ ...base, SAGE_RUN_MIGRATIONS: 'yes' }, 'SAGE_RUN_MIGRATIONS'],
    [{ ...base, SAGE_RELAY_SHUTDOWN_TIMEOUT_MS: '10s' }, 'SAGE_RELAY_SHUTDOWN_TIMEOUT_MS'],
    [{ ...base, SAGE_DB_RETRY_ATTEMPTS: '-1' }, 'SAGE_DB_RETRY_ATTEMPTS'],
    [{ ...base, SAGE_DB_RETRY_ATTEMPTS: '1001' }, 'SAGE_DB_RETRY_ATTEMPTS'],
    [{ ...base, SAGE_DB_RETRY_DELAY_MS: '3s' }, 'SAGE_DB_RETRY_DELAY_MS'],
    [{ ...base, SAGE_RELAY_WAL_MAX_WINDOW: '0' }, 'SAGE_RELAY_WAL_MAX_WINDOW'],
    [{ ...base, SAGE_RELAY_WAL_MAX_WINDOW: '10k' }, 'SAGE_RELAY_WAL_MAX_WINDOW'],
  ])('%j → InvalidOptionsError naming %s', (env, option) => {
    expect(() => readRelayConfig(env)).toThrow(InvalidOptionsError);
    expect(() => readRelayConfig(env)).toThrow(expect.objectContaining({ option }) as Error);
  });
});
