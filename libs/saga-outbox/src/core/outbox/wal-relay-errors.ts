import { SagaOutboxError } from '../errors';

/** The WAL-streaming relay needs `wal_level = logical`; the server runs with less. */
export class WalLevelNotLogicalError extends SagaOutboxError {
  constructor(readonly walLevel: string) {
    super(
      'OUTBOX_WAL_LEVEL_NOT_LOGICAL',
      `The WAL-streaming outbox relay (outbox.relay.mode "wal") needs the PostgreSQL setting ` +
        `wal_level = logical, but the server runs with wal_level = ${walLevel}. Set it ` +
        `(ALTER SYSTEM SET wal_level = logical, or postgresql.conf; on a managed service its ` +
        `"logical replication" parameter) and restart PostgreSQL, or use outbox.relay.mode "polling".`,
    );
  }
}

/** The WAL relay was configured where it cannot run (embedded PGlite). */
export class WalRelayUnsupportedError extends SagaOutboxError {
  constructor(where: string) {
    super(
      'OUTBOX_WAL_UNSUPPORTED',
      `The WAL-streaming outbox relay (outbox.relay.mode "wal") cannot run on ${where}: it has no ` +
        `logical replication. Use outbox.relay.mode "polling" (the default) there.`,
    );
  }
}

/** The publication the relay streams from does not exist in the database. */
export class WalPublicationMissingError extends SagaOutboxError {
  constructor(readonly publication: string) {
    super(
      'OUTBOX_WAL_PUBLICATION_MISSING',
      `The WAL-streaming outbox relay streams from the publication "${publication}", which does ` +
        `not exist in this database. Add outboxWalPublicationMigration() from ` +
        `@sage/saga-outbox/migrations to your migrations and run them (or set ` +
        `outbox.relay.wal.publication to the publication you created on the outbox table).`,
    );
  }
}

/**
 * The replication slot cannot stream: PostgreSQL invalidated it (it held back more WAL than
 * `max_slot_wal_keep_size`), or a slot of that name belongs to another database or plugin.
 */
export class WalSlotUnusableError extends SagaOutboxError {
  constructor(
    readonly slot: string,
    problem: string,
  ) {
    super(
      'OUTBOX_WAL_SLOT_UNUSABLE',
      `The outbox replication slot "${slot}" cannot be used: ${problem}. Nothing is lost (messages ` +
        `stay pending in the outbox table): drop the slot (SELECT pg_drop_replication_slot('${slot}')) ` +
        `and the relay creates it again and first publishes the pending rows, or set ` +
        `outbox.relay.wal.slot to another name.`,
    );
  }
}
