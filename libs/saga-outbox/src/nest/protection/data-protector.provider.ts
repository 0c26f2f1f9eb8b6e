import type { Provider } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { validateDataProtection } from '../../core/protection/data-protection-options';
import { DataProtector } from '../../core/protection/data-protector';
import { PostgresSubjectKeyStore } from '../../persistence/postgres/postgres-subject-key-store';
import { SAGA_OUTBOX_OPTIONS } from '../saga-outbox.module-definition';
import type { SagaOutboxModuleOptions } from '../saga-outbox.options';
import { SageDatabase } from '../sage-database';
import { DATA_PROTECTOR } from './data-protector.token';

export { DATA_PROTECTOR } from './data-protector.token';

/**
 * Builds the DataProtector from `dataProtection`; data-subject keys default to the `subject_key`
 * table in Sage's schema of the module's database (PostgresSubjectKeyStore), whose statements run
 * in the caller's transaction when there is one.
 */
export const dataProtectorProvider: Provider = {
  provide: DATA_PROTECTOR,
  inject: [SageDatabase, SAGA_OUTBOX_OPTIONS],
  useFactory: (
    db: SageDatabase,
    options: SagaOutboxModuleOptions,
  ): DataProtector<EntityManager> | null => {
    const settings = validateDataProtection(options.dataProtection);
    if (!settings) return null;
    return new DataProtector<EntityManager>({
      ...settings,
      subjectKeys:
        settings.subjectKeys ?? new PostgresSubjectKeyStore(db.dataSource, { schema: db.schema }),
    });
  },
};
