import { SagaOutboxError } from '../errors';

/**
 * `erase(subjectId)` refused: sagas that are not finished hold the subject's encrypted data, and a
 * saga whose input or results are shredded cannot continue (it would end `failed` with
 * DATA_UNREADABLE). Names the sagas, never the subject.
 */
export class SubjectHasRunningSagasError extends SagaOutboxError {
  constructor(readonly sagas: readonly { id: string; name: string; status: string }[]) {
    const shown = sagas
      .slice(0, 10)
      .map((s) => `${s.name} ${s.id} (${s.status})`)
      .join(', ');
    super(
      'SUBJECT_HAS_RUNNING_SAGAS',
      `The data subject was not erased: ${sagas.length} saga(s) holding its data are not finished: ${shown}${sagas.length > 10 ? ', …' : ''}. Wait for them to end (or cancel them), then erase again; or erase with force (sage gdpr erase --force), which leaves those sagas unable to continue: they end failed with DATA_UNREADABLE.`,
    );
  }
}

/** Erasure or export was asked of a service whose dataProtection has no data-subject key store. */
export class SubjectKeysNotConfiguredError extends SagaOutboxError {
  constructor() {
    super(
      'SUBJECT_KEYS_NOT_CONFIGURED',
      'Data-subject erasure and export need per-subject keys: set dataProtection.keys (and dataProtection.subjectKeys when the keys are not in this database) on this service, and declare `subject` on the sagas and message types that carry personal data.',
    );
  }
}
