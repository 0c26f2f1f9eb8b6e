import { readRelayConfig } from '../../standalone-relay/relay-config';
import { defaultRunMigrations, isProductionMode } from './production-mode';

describe('production mode', () => {
  it('is NODE_ENV=production, whatever its case and spacing', () => {
    expect(isProductionMode({ NODE_ENV: 'production' })).toBe(true);
    expect(isProductionMode({ NODE_ENV: ' PRODUCTION ' })).toBe(true);
    for (const NODE_ENV of [undefined, '', 'development', 'test', 'prod'])
      expect(isProductionMode({ NODE_ENV })).toBe(false);
  });

  it('turns migrations at startup off by default', () => {
    expect(defaultRunMigrations({ NODE_ENV: 'production' })).toBe(false);
    expect(defaultRunMigrations({ NODE_ENV: 'development' })).toBe(true);
    expect(defaultRunMigrations({})).toBe(true);
  });

  it('the standalone relay runs no DDL in production unless SAGE_RUN_MIGRATIONS=true', () => {
    const env = {
      DATABASE_URL: 'postgres://relay@db:5432/app',
      SAGE_BROKER_URL: 'nats://nats:4222',
    };
    expect(readRelayConfig(env).runMigrations).toBe(true);
    expect(readRelayConfig({ ...env, NODE_ENV: 'production' }).runMigrations).toBe(false);
    expect(
      readRelayConfig({ ...env, NODE_ENV: 'production', SAGE_RUN_MIGRATIONS: 'true' })
        .runMigrations,
    ).toBe(true);
    expect(readRelayConfig({ ...env, SAGE_RUN_MIGRATIONS: 'false' }).runMigrations).toBe(false);
  });
});
