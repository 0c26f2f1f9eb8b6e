import type { ConnectionOptions } from 'node:tls';
import { Client, types, type ClientConfig } from 'pg';
import type { DataSource } from 'typeorm';
import { InvalidOptionsError } from '../../core/errors';
import { storableText } from '../../core/error-text';
import type { JsonValue } from '../../core/json';
import type { ClaimedOutboxMessage } from '../../core/outbox/outbox-message';
import {
  WalLevelNotLogicalError,
  WalPublicationMissingError,
  WalSlotUnusableError,
} from '../../core/outbox/wal-relay-errors';
import type {
  WalFencedResult,
  WalOutboxSession,
  WalOutboxSource,
  WalOutboxStreamHandlers,
  WalSlotLag,
} from '../../core/ports/wal-outbox-source';
import { outboxTables, type OutboxTables } from './outbox-tables';
import { PgoutputDecoder } from './pgoutput-decoder';
import { queryOnce } from './run-statement';
import { sagaSchema } from './schema-name';
import { defaultWalName } from './wal-names';
import * as q from './wal-relay-queries.sql';

export interface PostgresWalSourceOptions {
  /** Schema of the outbox table (default `sage`). */
  schema?: string;
  /**
   * Replication slot name (one per relay group; created at start if missing). Default
   * `sage_outbox`, or `sage_outbox_<schema>` for another schema. Lower-case letters, digits, `_`.
   */
  slot?: string;
  /** Publication on the outbox table (outboxWalPublicationMigration); same default as `slot`. */
  publication?: string;
  /**
   * How often a status update is sent even without progress, asking the server for a keepalive in
   * return (keeps the walsender alive, and shows the relay alive to its health check). Default 10000.
   */
  statusIntervalMs?: number;
}

/**
 * The settings of the replication connection (a subset of node-postgres' client settings, spelled
 * the same way): declared here so the package's types need no `@types/pg`.
 */
export interface PostgresReplicationConnection {
  connectionString?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string | (() => string | Promise<string>);
  database?: string;
  ssl?: boolean | ConnectionOptions;
  application_name?: string;
}

/** Longest dead-letter reason stored (as the polling relay). */
const MAX_ERROR_LENGTH = 2000;
const NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const parseTimestamptz = types.getTypeParser(1184, 'text') as (text: string) => Date;

/**
 * Outbox messages from PostgreSQL logical decoding: a `pgoutput` stream of the outbox table's
 * INSERTs (the publication outboxWalPublicationMigration creates), read on a replication connection
 * of node-postgres (`replication: 'database'`), one per session. SQL: wal-relay-queries.sql.ts.
 *
 * Leader election is the slot's own exclusivity (PostgreSQL refuses a second active consumer with
 * SQLSTATE 55006: that relay stands by); fencing is the slot's `active_pid` (see the SQL).
 */
export class PostgresWalSource implements WalOutboxSource {
  readonly slot: string;
  readonly publication: string;
  private readonly tables: OutboxTables;
  private readonly statusIntervalMs: number;

  constructor(
    private readonly dataSource: DataSource,
    private readonly connection: PostgresReplicationConnection,
    options: PostgresWalSourceOptions = {},
  ) {
    const schema = sagaSchema(options.schema);
    this.tables = outboxTables(schema);
    this.slot = checkedName('outbox.relay.wal.slot', options.slot ?? defaultWalName(schema.name));
    this.publication = checkedName(
      'outbox.relay.wal.publication',
      options.publication ?? defaultWalName(schema.name),
    );
    this.statusIntervalMs = options.statusIntervalMs ?? 10_000;
  }

  /** Checks wal_level, the publication and the slot (creating it), without streaming. */
  async prepare(): Promise<q.SlotRow & { confirmed: bigint }> {
    const [level] = await queryOnce(this.dataSource, q.SHOW_WAL_LEVEL);
    if (level?.wal_level !== 'logical')
      throw new WalLevelNotLogicalError(level?.wal_level ?? 'unknown');
    const [pub] = await queryOnce(this.dataSource, q.publicationExists(this.publication));
    if (!pub?.exists) throw new WalPublicationMissingError(this.publication);
    let [slot] = await queryOnce(this.dataSource, q.selectSlot(this.slot));
    if (!slot) {
      try {
        await queryOnce(this.dataSource, q.createSlot(this.slot));
      } catch (error) {
        // Another relay created it at the same moment: fine.
        if ((error as { code?: unknown }).code !== '42710') throw error;
      }
      [slot] = await queryOnce(this.dataSource, q.selectSlot(this.slot));
    }
    if (!slot) throw new WalSlotUnusableError(this.slot, 'it could not be created');
    if (slot.plugin !== 'pgoutput')
      throw new WalSlotUnusableError(
        this.slot,
        `it uses the output plugin "${String(slot.plugin)}", not pgoutput`,
      );
    if (!slot.same_database)
      throw new WalSlotUnusableError(
        this.slot,
        `it belongs to the database "${String(slot.database)}"`,
      );
    if (slot.wal_status === 'lost')
      throw new WalSlotUnusableError(
        this.slot,
        'PostgreSQL invalidated it after it held back more WAL than max_slot_wal_keep_size',
      );
    return { ...slot, confirmed: parseLsn(slot.confirmed_flush_lsn) };
  }

  async check(): Promise<void> {
    await this.prepare();
  }

  async open(handlers: WalOutboxStreamHandlers): Promise<WalOutboxSession | null> {
    const slot = await this.prepare();
    if (slot.active) return null;
    const client = new Client({ ...this.connection, replication: 'database' } as ClientConfig);
    client.on('error', () => undefined); // reported through the stream's end below
    await client.connect();
    try {
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const pid = rows[0]!.pid;
      const session = new PostgresWalSession(
        client,
        this,
        this.dataSource,
        this.tables,
        pid,
        slot.confirmed,
        handlers,
        this.statusIntervalMs,
      );
      return (await session.start()) ? session : null;
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
  }

  /**
   * Whether rows wait that the stream will not deliver (a replayed dead letter, a claim left by a
   * cut-short catch-up whose lease is over; see walStrandedRows): the WAL relay's `catchUpCheck`.
   */
  async hasStrandedRows(): Promise<boolean> {
    const [row] = await queryOnce(this.dataSource, q.walStrandedRows(this.tables));
    return row?.stranded === true;
  }

  async slotLag(): Promise<WalSlotLag | null> {
    const [row] = await queryOnce(this.dataSource, q.slotLag(this.slot));
    if (!row) return null;
    return {
      lagBytes: row.lag_bytes === null ? 0 : Number(row.lag_bytes),
      walStatus: row.wal_status,
      active: row.active,
    };
  }
}

/** The part of node-postgres' Connection a replication stream uses (not in its typings). */
interface PgConnection {
  on(event: 'copyData', fn: (msg: { chunk: Buffer }) => void): void;
  once(event: 'replicationStart', fn: () => void): void;
  sendCopyFromChunk(chunk: Buffer): void;
  stream: { pause(): void; resume(): void };
}

class PostgresWalSession implements WalOutboxSession {
  readonly holder: string;
  private readonly decoder = new PgoutputDecoder();
  private readonly conn: PgConnection;
  private tx: ClaimedOutboxMessage[] | undefined;
  private confirmed: bigint;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly client: Client,
    private readonly source: PostgresWalSource,
    private readonly dataSource: DataSource,
    private readonly tables: OutboxTables,
    private readonly pid: number,
    readonly startLsn: bigint,
    private readonly handlers: WalOutboxStreamHandlers,
    private readonly statusIntervalMs: number,
  ) {
    this.holder = `pid ${pid}`;
    this.confirmed = startLsn;
    this.conn = (client as unknown as { connection: PgConnection }).connection;
  }

  /** START_REPLICATION; false when another session holds the slot (SQLSTATE 55006). */
  async start(): Promise<boolean> {
    const started = new Promise<void>((resolve) => this.conn.once('replicationStart', resolve));
    this.conn.on('copyData', ({ chunk }) => this.onCopyData(chunk));
    // Names checked against NAME; the publication list is a quoted identifier inside a literal.
    const streaming = this.client.query(
      `START_REPLICATION SLOT "${this.source.slot}" LOGICAL 0/0 ` +
        `(proto_version '1', publication_names '"${this.source.publication}"')`,
    );
    const ended = streaming.then(
      () => undefined,
      (error: unknown) => error,
    );
    const first = await Promise.race([started.then(() => 'started' as const), ended]);
    if (first !== 'started') {
      await this.client.end().catch(() => undefined);
      if ((first as { code?: unknown } | undefined)?.code === '55006') return false;
      throw first === undefined
        ? new Error('replication stream ended before it started')
        : toError(first);
    }
    // Asks for a reply: the server's keepalive in return shows the stream alive (relay health).
    this.timer = setInterval(() => this.sendStatus(true), this.statusIntervalMs);
    this.timer.unref?.();
    void ended.then((error) => this.finish(error === undefined ? undefined : toError(error)));
    this.client.once('end', () => this.finish(new Error('replication connection ended')));
    return true;
  }

  pause(): void {
    this.conn.stream.pause();
  }

  resume(): void {
    this.conn.stream.resume();
  }

  confirm(lsn: bigint): void {
    if (lsn <= this.confirmed) return;
    this.confirmed = lsn;
    this.sendStatus(false);
  }

  async markSent(ids: readonly string[]): Promise<WalFencedResult> {
    const [row] = await queryOnce(
      this.dataSource,
      q.walMarkSent(this.tables, { ids, slot: this.source.slot, holderPid: this.pid }),
    );
    return { owner: row?.owner === true, ids: row?.ids ?? [], unseen: row?.unseen ?? [] };
  }

  async deadLetter(failures: readonly { id: string; error: string }[]): Promise<WalFencedResult> {
    const [row] = await queryOnce(
      this.dataSource,
      q.walDeadLetter(this.tables, {
        ids: failures.map((f) => f.id),
        errors: failures.map((f) => storableText(f.error, MAX_ERROR_LENGTH)),
        slot: this.source.slot,
        holderPid: this.pid,
      }),
    );
    return { owner: row?.owner === true, ids: row?.ids ?? [], unseen: row?.unseen ?? [] };
  }

  serverGone(error: unknown): boolean {
    return serverGoneError(error);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.sendStatus(false);
    this.closed = true;
    clearInterval(this.timer);
    await this.client.end().catch(() => undefined);
    this.finish(undefined);
  }

  private finished = false;
  private finish(error: Error | undefined): void {
    if (this.finished) return;
    this.finished = true;
    this.closed = true;
    clearInterval(this.timer);
    void this.client.end().catch(() => undefined);
    this.handlers.onClose(error);
  }

  private onCopyData(chunk: Buffer): void {
    if (this.closed) return;
    const kind = chunk[0];
    if (kind === 0x77 /* w: XLogData */) {
      const msg = this.decoder.decode(chunk.subarray(25));
      if (msg.tag === 'begin') this.tx = [];
      else if (msg.tag === 'insert') {
        const rel = msg.relation;
        if (this.tx && `"${rel.schema}"."${rel.table}"` === this.tables.outboxMessage.toString())
          this.tx.push(toMessage(msg.row));
      } else if (msg.tag === 'commit') {
        const messages = this.tx ?? [];
        this.tx = undefined;
        this.handlers.onTransaction({ endLsn: msg.endLsn, messages });
      }
    } else if (kind === 0x6b /* k: keepalive */) {
      const walEnd = chunk.readBigUInt64BE(1);
      if (this.tx === undefined) this.handlers.onKeepalive(walEnd);
      if (chunk[17] === 1) this.sendStatus(false);
    }
  }

  /** Standby status update: written = flushed = applied = the confirmed position. */
  private sendStatus(replyRequested: boolean): void {
    if (this.closed) return;
    const buf = Buffer.alloc(34);
    buf.write('r', 0);
    buf.writeBigUInt64BE(this.confirmed, 1);
    buf.writeBigUInt64BE(this.confirmed, 9);
    buf.writeBigUInt64BE(this.confirmed, 17);
    buf.writeBigInt64BE(BigInt(Date.now() - 946_684_800_000) * 1000n, 25);
    buf.writeUInt8(replyRequested ? 1 : 0, 33);
    try {
      this.conn.sendCopyFromChunk(buf);
    } catch {
      // The connection is gone; its end is reported through finish().
    }
  }
}

/** Node's socket errors for a server that is not there (any more). */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * A write failed because the server is going away or cannot be reached: SQLSTATE class 57P
 * (`admin_shutdown` when a fast shutdown terminates the session, `crash_shutdown`,
 * `cannot_connect_now` while it shuts down or starts), class 08 (connection exception), a socket
 * error, or node-postgres' own "Connection terminated" (the server closed the socket), also when
 * TypeORM wrapped it (QueryFailedError keeps the driver's `code`; `driverError` the original).
 */
export function serverGoneError(error: unknown): boolean {
  for (let e = error, depth = 0; e && typeof e === 'object' && depth < 4; depth++) {
    const { code, message, driverError, cause } = e as {
      code?: unknown;
      message?: unknown;
      driverError?: unknown;
      cause?: unknown;
    };
    if (
      typeof code === 'string' &&
      (code.startsWith('57P') || code.startsWith('08') || UNREACHABLE.has(code))
    )
      return true;
    if (typeof message === 'string' && /^Connection terminated\b/.test(message)) return true;
    e = driverError ?? cause;
  }
  return false;
}

function toMessage(row: Record<string, string | null | undefined>): ClaimedOutboxMessage {
  return {
    id: row.id!,
    destination: row.destination!,
    key: row.key ?? null,
    type: row.type!,
    payload: JSON.parse(row.payload ?? 'null') as JsonValue,
    headers: JSON.parse(row.headers ?? '{}') as Record<string, string>,
    sagaId: row.saga_id ?? null,
    attempts: Number(row.attempts ?? 0),
    createdAt: row.created_at ? parseTimestamptz(row.created_at) : new Date(),
  };
}

function parseLsn(text: string | null): bigint {
  if (!text) return 0n;
  const [hi, lo] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

function checkedName(option: string, name: string): string {
  if (!NAME.test(name))
    throw new InvalidOptionsError(
      option,
      `must be 1-63 lower-case letters, digits or "_", starting with a letter or "_"; got "${name}"`,
    );
  return name;
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * The replication connection's settings, taken from a TypeORM DataSource's own (url or host, port,
 * user, password or password function, database, ssl): the stream runs against the same server and
 * database as the pool, with the same credentials (which need the REPLICATION attribute).
 */
export function replicationConnectionOf(dataSource: DataSource): PostgresReplicationConnection {
  const o = dataSource.options as {
    url?: string;
    host?: string;
    port?: number;
    username?: string;
    password?: PostgresReplicationConnection['password'];
    database?: string;
    ssl?: PostgresReplicationConnection['ssl'];
    applicationName?: string;
  };
  return {
    connectionString: o.url,
    host: o.host,
    port: o.port,
    user: o.username,
    password: o.password,
    database: o.database,
    ssl: o.ssl,
    application_name: `${o.applicationName ?? 'sage'}_wal_relay`.slice(0, 63),
  };
}
