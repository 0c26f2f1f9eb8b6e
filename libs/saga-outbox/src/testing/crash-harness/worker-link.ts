import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * One worker's way to the database: a TCP forwarder the harness can cut. Cutting it is what the
 * database sees when a process is killed -9: every connection of the worker drops at once, so
 * PostgreSQL (or PGlite's socket server) rolls back whatever transaction was open on them, and no
 * statement the worker sends afterwards arrives (new connections are refused).
 */
export class WorkerLink {
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  private cutAt: number | undefined;
  private boundPort = 0;

  private constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((client) => this.forward(client));
  }

  /** Listens on a free loopback port and forwards every connection to `target`. */
  static async open(target: { host: string; port: number }): Promise<WorkerLink> {
    const link = new WorkerLink(target);
    await new Promise<void>((resolve, reject) => {
      link.server.once('error', reject);
      link.server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = link.server.address();
    link.boundPort = address !== null && typeof address === 'object' ? address.port : 0;
    return link;
  }

  private forward(client: Socket): void {
    if (this.cut) {
      client.destroy();
      return;
    }
    const upstream = connect(this.target.port, this.target.host);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.setNoDelay(true);
      socket.on('close', () => this.sockets.delete(socket));
      // A cut (or the database going away) ends the pair: neither end outlives the other.
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  }

  /** The port the worker's DataSource connects to. */
  get port(): number {
    return this.boundPort;
  }

  get cut(): boolean {
    return this.cutAt !== undefined;
  }

  /**
   * Drops every connection now, synchronously: nothing the worker writes from here on reaches the
   * database. Idempotent.
   */
  sever(): void {
    if (this.cutAt !== undefined) return;
    this.cutAt = Date.now();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    this.server.close();
  }

  /** Severs the link (if it still stands) and waits for the listener to close. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      if (!this.server.listening) resolve();
      else this.server.once('close', () => resolve());
    });
    this.sever();
    await closed;
  }
}
