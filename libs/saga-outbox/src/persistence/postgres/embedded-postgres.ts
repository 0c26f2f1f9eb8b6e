import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { InvalidOptionsError } from '../../core/errors';
import { assertEmbeddedAllowed, assertLoopbackHost } from './embedded-postgres-guard';

export interface EmbeddedPostgresOptions {
  /** Directory holding the database files; data survives restarts. Omit for an in-memory database. */
  dataDir?: string;
  /**
   * Loopback interface to listen on (default 127.0.0.1): `localhost`, `127.x.x.x` or `::1`. Any
   * other address is refused: the embedded database accepts any password.
   */
  host?: string;
  /** TCP port (default 0: a free port chosen by the OS; read it from the result). */
  port?: number;
  /**
   * Client connections the socket server accepts (default 20). Queries from all of them are
   * multiplexed onto the single PGlite session; size the app's pool at or below this.
   */
  maxConnections?: number;
  /**
   * Start even when `NODE_ENV=production` (default false: refused with
   * EmbeddedDatabaseInProductionError). The environment variable `SAGE_EMBEDDED_IN_PRODUCTION=1`
   * does the same.
   */
  allowInProduction?: boolean;
}

/** A running embedded PostgreSQL: connect any `pg` / TypeORM client to `host:port`. */
export interface EmbeddedPostgres {
  readonly host: string;
  readonly port: number;
  /**
   * PGlite has one database and one user; any password is accepted (it listens on loopback only,
   * and runs in this process: anyone who can reach the port can already run code on this host).
   */
  readonly database: string;
  readonly username: string;
  readonly password: string;
  /** `postgres://…` for the above. */
  readonly url: string;
  /** Closes client sockets, stops listening and closes the database (flushing it to `dataDir`). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts PGlite (real PostgreSQL compiled to WASM, in this process) behind a PostgreSQL wire-protocol
 * socket, so the same `pg`/TypeORM code and SQL run against it as against a server. The zero-setup
 * default for demos and local development.
 *
 * What differs from a server: there is a single backend session. Transactions from
 * different connections are serialised by the socket multiplexer — while one connection is inside a
 * transaction, the others' queries wait — so code must never hold a transaction open while waiting
 * on another connection (it would wait forever). Row locks and SKIP LOCKED work; session-level state
 * (advisory locks, SET) is shared by all connections; LISTEN/NOTIFY does not reach other connections.
 *
 * Security: it listens on loopback only (`host` must be a loopback address) and accepts any
 * password; with `NODE_ENV=production` it refuses to start (EmbeddedDatabaseInProductionError)
 * unless `allowInProduction` or `SAGE_EMBEDDED_IN_PRODUCTION=1` says otherwise.
 */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgres> {
  assertEmbeddedAllowed(options);
  const host = options.host ?? '127.0.0.1';
  assertLoopbackHost(host);
  const maxConnections = options.maxConnections ?? 20;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new InvalidOptionsError(
      'maxConnections',
      `must be an integer >= 1, got ${String(options.maxConnections)}`,
    );
  }
  const requestedPort = options.port ?? 0;
  if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65_535) {
    throw new InvalidOptionsError(
      'port',
      `must be an integer in 0..65535, got ${String(options.port)}`,
    );
  }

  const db = await PGlite.create(options.dataDir !== undefined ? { dataDir: options.dataDir } : {});
  const server = new PGLiteSocketServer({ db, host, port: requestedPort, maxConnections });
  // pglite-socket 0.2.x interleaves clients' extended-protocol batches outside transactions.
  patchQueue((server as unknown as { queryQueue: QueryQueue }).queryQueue);
  try {
    await server.start();
  } catch (error) {
    await db.close();
    throw error;
  }
  // With port 0 the server learns its port on listen; getServerConn() reports `host:port`.
  const conn = server.getServerConn();
  const port = Number(conn.slice(conn.lastIndexOf(':') + 1));

  let stopping: Promise<void> | undefined;
  const username = 'postgres';
  const password = 'postgres';
  const database = 'postgres';
  return {
    host,
    port,
    database,
    username,
    password,
    url: `postgres://${username}:${password}@${host.includes(':') ? `[${host}]` : host}:${port}/${database}`,
    stop() {
      stopping ??= (async () => {
        try {
          await server.stop();
        } finally {
          if (!db.closed) await db.close();
        }
      })();
      return stopping;
    },
  };
}

/* Keeps each client's Parse/Bind/Describe/Execute/Sync batch together on the one PGlite session. */
interface QueuedMessage {
  handlerId: number;
  message: Uint8Array;
  resolve: (bytes: number) => void;
  reject: (error: unknown) => void;
  onData: (data: Uint8Array) => void;
}

interface QueryQueue {
  queue: QueuedMessage[];
  processing: boolean;
  lastHandlerId: number | null;
  db: {
    isInTransaction(): boolean;
    runExclusive<T>(fn: () => Promise<T>): Promise<T>;
    execProtocolRawStream(
      message: Uint8Array,
      options: { onRawData: (data: Uint8Array) => void },
    ): Promise<unknown>;
  };
  processQueue(): Promise<void>;
  clearQueueForHandler(handlerId: number): void;
}

const SYNC = 0x53; // 'S'
const QUERY = 0x51; // 'Q' (simple protocol: a batch of its own)
const TERMINATE = 0x58; // 'X'

/** Whether `message` ends a client's batch (or stands alone: startup messages have no type byte). */
function endsBatch(message: Uint8Array): boolean {
  const type = message[0];
  return type === SYNC || type === QUERY || type === TERMINATE || type === 0;
}

function patchQueue(q: QueryQueue): void {
  let midBatch = false;
  q.processQueue = async function processQueue(this: QueryQueue): Promise<void> {
    if (this.processing || this.queue.length === 0) return;
    this.processing = true;
    try {
      while (this.queue.length > 0) {
        let item: QueuedMessage | undefined;
        if (this.lastHandlerId !== null && (midBatch || this.db.isInTransaction())) {
          const i = this.queue.findIndex((m) => m.handlerId === this.lastHandlerId);
          if (i === -1) break; // the client's next message re-enters processQueue
          item = this.queue.splice(i, 1)[0];
        } else {
          item = this.queue.shift();
        }
        if (!item) break;
        const current = item;
        let bytes = 0;
        try {
          await this.db.runExclusive(() =>
            this.db.execProtocolRawStream(current.message, {
              onRawData: (data) => {
                bytes += data.length;
                current.onData(data);
              },
            }),
          );
        } catch (error) {
          midBatch = false;
          current.reject(error);
          continue;
        }
        midBatch = !endsBatch(current.message);
        this.lastHandlerId = current.handlerId;
        current.resolve(bytes);
      }
    } finally {
      this.processing = false;
    }
  };
  const clear = q.clearQueueForHandler.bind(q);
  q.clearQueueForHandler = (handlerId: number): void => {
    clear(handlerId);
    // A client that left mid-batch must not hold the others back.
    if (handlerId === q.lastHandlerId) midBatch = false;
    void q.processQueue();
  };
}
