/**
 * Nest modules for tests of apps that own their TypeORM DataSource: `TypeOrmModule` on a test
 * database, and `@nestjs-cls/transactional` over it (the ambient `@Transactional()` transaction).
 */
import type { DynamicModule } from '@nestjs/common';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import { ClsPluginTransactional } from '@nestjs-cls/transactional';
import { TransactionalAdapterTypeOrm } from '@nestjs-cls/transactional-adapter-typeorm';
import { ClsModule } from 'nestjs-cls';
import type { PgConnection } from './pg';

/** `TypeOrmModule.forRoot` (the default DataSource) on `c`, pool of 6. */
export function typeOrmTestModule(c: PgConnection): DynamicModule {
  return TypeOrmModule.forRoot({
    type: 'postgres',
    host: c.host,
    port: c.port,
    username: c.user,
    password: c.password,
    database: c.database,
    extra: { max: 6 },
  });
}

/** Global ClsModule with the transactional plugin on the default TypeORM DataSource. */
export function clsTransactionalModule(): DynamicModule {
  return ClsModule.forRoot({
    global: true,
    plugins: [
      new ClsPluginTransactional({
        imports: [TypeOrmModule],
        adapter: new TransactionalAdapterTypeOrm({ dataSourceToken: getDataSourceToken() }),
      }),
    ],
  });
}
