/**
 * A nats-server of one test's own (JetStream on, store under a temp dir, a free loopback port),
 * configured with the TLS and authorization blocks the test gives. Stopped by `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { closedPort } from './startup-support';

export class PrivateNats {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {}

  /** `config`: extra nats-server configuration (e.g. `tls { … }` and `authorization { … }`). */
  static async start(dir: string, config: string): Promise<PrivateNats> {
    await mkdir(dir, { recursive: true });
    const port = await closedPort();
    const file = join(dir, 'nats.conf');
    await writeFile(
      file,
      `listen: 127.0.0.1:${port}\njetstream { store_dir: ${JSON.stringify(join(dir, 'js'))} }\n${config}\n`,
    );
    const child = spawn('/usr/sbin/nats-server', ['-c', file], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const server = new PrivateNats(child, port);
    const deadline = Date.now() + 10_000;
    while (!(await listening(port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await server.stop();
        throw new Error(`nats-server did not start: ${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return server;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
