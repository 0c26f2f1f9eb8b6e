import { Inject, Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { SubjectKeysNotConfiguredError } from '../../core/protection/data-subject-errors';
import {
  DataSubjects,
  type DataSubjectExport,
  type SubjectErasure,
  type SubjectErasurePreview,
} from '../../core/protection/data-subjects';
import type { DataProtector } from '../../core/protection/data-protector';
import { PostgresProtectedDataStore } from '../../persistence/postgres/postgres-protected-data-store';
import { SageDatabase } from '../sage-database';
import { DATA_PROTECTOR } from './data-protector.token';

/**
 * Data-subject requests from app code (the same as `sage gdpr erase|export`), over this module's
 * `dataProtection` keys and database:
 *
 * ```ts
 * constructor(private readonly subjects: SageDataSubjects) {}
 * await this.subjects.erase(customerId);           // crypto-shredding; refuses unfinished sagas
 * const data = await this.subjects.export(customerId);
 * ```
 *
 * Every method throws SubjectKeysNotConfiguredError when the module has no `dataProtection`. Erasure
 * forgets the key in this process at once; other processes forget it within their
 * `subjectKeyCacheMs`. See docs/data-protection-keys.md.
 */
@Injectable()
export class SageDataSubjects {
  private readonly subjects: DataSubjects | undefined;

  constructor(
    @Inject(DATA_PROTECTOR) protector: DataProtector<EntityManager> | null,
    db: SageDatabase,
  ) {
    this.subjects = protector
      ? new DataSubjects(
          protector,
          new PostgresProtectedDataStore(db.dataSource, { schema: db.schema }),
        )
      : undefined;
  }

  /**
   * Destroys the subject's key: everything encrypted with it becomes unreadable everywhere, for
   * good. Throws SubjectHasRunningSagasError while sagas holding its data are unfinished, unless
   * `force` (those sagas then end `failed`). Recorded in the audit log under a keyed hash of the id.
   */
  erase(subjectId: string, options: { force?: boolean } = {}): Promise<SubjectErasure> {
    return this.use().erase(subjectId, options);
  }

  /** What `erase` would do (its key, unfinished sagas, unsent messages), changing nothing. */
  preview(subjectId: string): Promise<SubjectErasurePreview> {
    return this.use().preview(subjectId);
  }

  /** Everything still readable for the subject, decrypted (format: docs/data-protection-keys.md#export). */
  export(subjectId: string): Promise<DataSubjectExport> {
    return this.use().export(subjectId);
  }

  private use(): DataSubjects {
    if (!this.subjects) throw new SubjectKeysNotConfiguredError();
    return this.subjects;
  }
}
