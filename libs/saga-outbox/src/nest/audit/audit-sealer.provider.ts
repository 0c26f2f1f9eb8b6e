import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { AuditSealer } from '../../core/audit/audit-sealer';
import { PostgresAuditLog } from '../../persistence/postgres/postgres-audit-log';
import { NestSageLogger } from '../nest-sage-logger';
import { SAGA_OUTBOX_OPTIONS } from '../saga-outbox.module-definition';
import type { SagaOutboxModuleOptions } from '../saga-outbox.options';
import { SageDatabase } from '../sage-database';

/**
 * The audit log's sealer (`audit`; on by default): moves the entries the triggers recorded into the
 * hash chain, and prunes it behind a checkpoint with `audit.retentionMs`. Started on application
 * bootstrap unless `audit.enabled` or `autoStart` is false, stopped on shutdown. With
 * `autoStart: false` it is built but not started: `sealer?.start()`.
 */
@Injectable()
export class AuditSealerProvider implements OnApplicationBootstrap, BeforeApplicationShutdown {
  /** Absent when `audit.enabled` is false. */
  readonly sealer: AuditSealer | undefined;
  /** The audit log of the module's database: `verify()`, `pendingCount()`, `sealAll()`. */
  readonly log: PostgresAuditLog;
  private readonly autoStart: boolean;

  constructor(
    database: SageDatabase,
    @Inject(SAGA_OUTBOX_OPTIONS) options: SagaOutboxModuleOptions,
  ) {
    const { enabled, hmacKeys, ...tuning } = options.audit ?? {};
    this.autoStart = options.autoStart !== false;
    this.log = new PostgresAuditLog(database.dataSource, { schema: database.schema, hmacKeys });
    if (enabled !== false)
      this.sealer = new AuditSealer({
        ...tuning,
        store: this.log,
        logger: new NestSageLogger('SageAudit'),
      });
  }

  onApplicationBootstrap(): void {
    if (this.autoStart) this.sealer?.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.sealer?.stop();
  }
}
