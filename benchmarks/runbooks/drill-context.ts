/** What every scenario of the runbook drill shares: the run's id, the services, the size. */
import { randomBytes } from 'node:crypto';
import type { TestDatabase } from '../../test/support/pg';

export interface DrillContext {
  /** Unique per run: names the exchanges and queues, so runs never meet. */
  readonly run: string;
  readonly rabbitUrl: string;
  readonly rabbitAddress: { host: string; port: number };
  readonly size: {
    /** Messages published while the relay is healthy, before the crash. */
    before: number;
    /** Messages written while the broker link is frozen (claimed by the relay that dies). */
    held: number;
  };
}

export function drillContext(quick: boolean): DrillContext {
  const rabbitUrl = process.env.SAGE_RABBITMQ_URL ?? 'amqp://sage:sage@127.0.0.1:56729';
  const url = new URL(rabbitUrl);
  return {
    run: randomBytes(4).toString('hex'),
    rabbitUrl,
    rabbitAddress: { host: url.hostname, port: Number(url.port || 5672) },
    size: quick ? { before: 40, held: 20 } : { before: 2000, held: 200 },
  };
}

/** DATABASE_URL of a test database, for the CLI and the relay processes. */
export function databaseUrl(db: TestDatabase): string {
  const c = db.connection;
  return `postgres://${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@${c.host}:${c.port}/${c.database}`;
}
