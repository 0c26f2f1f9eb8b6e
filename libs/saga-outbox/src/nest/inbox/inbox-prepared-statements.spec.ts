import type { FactoryProvider } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import { PostgresInboxStore } from '../../persistence/postgres/postgres-inbox-store';
import type { SageDatabase } from '../sage-database';
import { inboxProviders } from './inbox.providers';
import type { InboxModuleOptions } from './inbox.options';

/** The PostgresInboxStore provider's factory, as Nest calls it. */
const storeFactory = (inboxProviders as FactoryProvider[]).find(
  (p) => p.provide === PostgresInboxStore,
)!.useFactory as (db: SageDatabase, options?: InboxModuleOptions) => PostgresInboxStore;

/** A SageDatabase as the factory reads it; the DataSource is never initialised (no connection). */
const database = (embedded: boolean): SageDatabase =>
  ({
    embedded,
    schema: 'sage',
    dataSource: new DataSource({ type: 'postgres' }),
  }) as unknown as SageDatabase;

describe('inbox.preparedStatements', () => {
  it('is refused with the embedded database, naming the option and the fix', () => {
    const make = () => storeFactory(database(true), { preparedStatements: true });
    expect(make).toThrow(InvalidOptionsError);
    expect(make).toThrow(/inbox\.preparedStatements.*PGlite.*Remove it/s);
  });

  it('is accepted on a PostgreSQL server, and off by default everywhere', () => {
    expect(storeFactory(database(false), { preparedStatements: true })).toBeInstanceOf(
      PostgresInboxStore,
    );
    expect(storeFactory(database(true), {})).toBeInstanceOf(PostgresInboxStore);
    expect(storeFactory(database(true))).toBeInstanceOf(PostgresInboxStore);
  });
});
