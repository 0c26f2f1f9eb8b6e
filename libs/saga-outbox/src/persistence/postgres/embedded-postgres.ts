import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { InvalidOptionsError } from '../../core/errors';

export interface EmbeddedPostgresOptions {
  /** Directory holding the database files; data survives restarts. Omit for an in-memory database. */
  dataDir?: string;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** TCP port (default 0: a free port chosen by the OS; read it from the result). */
  port?: number;
  /**
   * Client connections the socket server accepts (default 20). Queries from all of them are
   * multiplexed onto the single PGlite session; size the app's pool at or below this.
   */
  maxConnections?: number;
}

/** A running embedded PostgreSQL: connect any `pg` / TypeORM client to `host:port`. */
export interface EmbeddedPostgres {
  readonly host: string;
  readonly port: number;
  /** PGlite has one database and one user; any password is accepted. */
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
 * What differs from a server (DESIGN.md §6): there is a single backend session. Transactions from
 * different connections are serialised by the socket multiplexer — while one connection is inside a
 * transaction, the others' queries wait — so code must never hold a transaction open while waiting
 * on another connection (it would wait forever). Row locks and SKIP LOCKED work; session-level state
 * (advisory locks, SET) is shared by all connections; LISTEN/NOTIFY does not reach other connections.
 */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgres> {
  const host = options.host ?? '127.0.0.1';
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
    url: `postgres://${username}:${password}@${host}:${port}/${database}`,
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
