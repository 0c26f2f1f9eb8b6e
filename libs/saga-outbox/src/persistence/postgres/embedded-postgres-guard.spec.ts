import { InvalidOptionsError, SagaOutboxError } from '../../core/errors';
import { openSageDatabase } from '../../nest/sage-database';
import { silentLogger } from '../../core/ports/logger';
import { startEmbeddedPostgres } from './embedded-postgres';
import {
  assertEmbeddedAllowed,
  assertLoopbackHost,
  EmbeddedDatabaseInProductionError,
} from './embedded-postgres-guard';

describe('the embedded database in production', () => {
  it('is refused with NODE_ENV=production, with an error naming both ways to allow it', () => {
    let error: unknown;
    try {
      assertEmbeddedAllowed({}, { NODE_ENV: 'production' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(EmbeddedDatabaseInProductionError);
    expect(error).toBeInstanceOf(SagaOutboxError);
    expect((error as SagaOutboxError).code).toBe('EMBEDDED_IN_PRODUCTION');
    expect((error as Error).message).toContain('embedded: { allowInProduction: true }');
    expect((error as Error).message).toContain('SAGE_EMBEDDED_IN_PRODUCTION=1');
    expect(() => assertEmbeddedAllowed({}, { NODE_ENV: ' Production ' })).toThrow(
      EmbeddedDatabaseInProductionError,
    );
    expect(() =>
      assertEmbeddedAllowed({}, { NODE_ENV: 'production', SAGE_EMBEDDED_IN_PRODUCTION: '0' }),
    ).toThrow(EmbeddedDatabaseInProductionError);
  });

  it('starts when allowed explicitly, or outside production', () => {
    expect(() =>
      assertEmbeddedAllowed({ allowInProduction: true }, { NODE_ENV: 'production' }),
    ).not.toThrow();
    for (const flag of ['1', 'true'])
      expect(() =>
        assertEmbeddedAllowed({}, { NODE_ENV: 'production', SAGE_EMBEDDED_IN_PRODUCTION: flag }),
      ).not.toThrow();
    for (const NODE_ENV of [undefined, 'development', 'test'])
      expect(() => assertEmbeddedAllowed({}, { NODE_ENV })).not.toThrow();
  });

  it('startEmbeddedPostgres and the module (no postgres, no dataSource) check before starting anything', async () => {
    const saved = process.env.NODE_ENV;
    process.env.NODE_ENV = 'production';
    try {
      await expect(startEmbeddedPostgres()).rejects.toBeInstanceOf(
        EmbeddedDatabaseInProductionError,
      );
      await expect(openSageDatabase({}, silentLogger)).rejects.toBeInstanceOf(
        EmbeddedDatabaseInProductionError,
      );
    } finally {
      process.env.NODE_ENV = saved;
    }
  });
});

describe('the embedded database host', () => {
  it('is a loopback address', () => {
    for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', 'LOCALHOST', '::1', '[::1]'])
      expect(() => assertLoopbackHost(host)).not.toThrow();
  });

  it('anything else is an InvalidOptionsError naming host', async () => {
    for (const host of [
      '0.0.0.0',
      '::',
      '10.0.0.5',
      '192.168.1.2',
      'db.example.com',
      '127.0.0.1.nip.io',
    ])
      expect(() => assertLoopbackHost(host)).toThrow(InvalidOptionsError);
    await expect(startEmbeddedPostgres({ host: '0.0.0.0' })).rejects.toThrow(
      'Invalid Sage option "host": must be a loopback address (127.0.0.1, ::1 or localhost), got "0.0.0.0"',
    );
  });
});
