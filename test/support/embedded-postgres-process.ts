/**
 * Runs `startEmbeddedPostgres` in a child Node process, for jest tests.
 *
 * Why a child: PGlite's Emscripten loader calls dynamic `import()` (of `module`, `fs/promises`)
 * while starting, and jest's CommonJS sandbox rejects dynamic import unless node runs with
 * `--experimental-vm-modules` (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING_FLAG). A plain node process —
 * how apps and the demo run it — has no such limit. The test still talks to it the production way:
 * pg/TypeORM over the socket.
 *
 * Run as a script (`node -r ts-node/register/transpile-only embedded-postgres-process.ts '<json>'`)
 * it starts the server, prints `{ host, port, ... }` as one JSON line, and stops the server
 * (flushing dataDir) and exits when its stdin closes or on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import {
  startEmbeddedPostgres,
  type EmbeddedPostgres,
  type EmbeddedPostgresOptions,
} from '../../libs/saga-outbox/src/persistence/postgres/embedded-postgres';

export type EmbeddedPostgresProcess = Omit<EmbeddedPostgres, 'stop'> & {
  readonly pid: number;
  /** Stops the server gracefully (the child closes PGlite, flushing dataDir) and waits for exit. */
  stop(): Promise<void>;
};

type ServerInfo = Omit<EmbeddedPostgres, 'stop'>;

export function spawnEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgresProcess> {
  const child = spawn(
    process.execPath,
    ['-r', require.resolve('ts-node/register/transpile-only'), __filename, JSON.stringify(options)],
    {
      cwd: join(__dirname, '..', '..'),
      env: { ...process.env, TS_NODE_PROJECT: join(__dirname, '..', '..', 'tsconfig.json') },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );

  return new Promise<EmbeddedPostgresProcess>((resolve, reject) => {
    let stdout = '';
    const onData = (chunk: Buffer): void => {
      stdout += chunk.toString();
      const newline = stdout.indexOf('\n');
      if (newline < 0) return;
      child.stdout.off('data', onData);
      const info = JSON.parse(stdout.slice(0, newline)) as ServerInfo;
      let stopping: Promise<void> | undefined;
      resolve({
        ...info,
        pid: child.pid!,
        stop() {
          stopping ??= (async () => {
            child.stdin.end();
            const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
            try {
              const code = await exited;
              if (code !== 0) throw new Error(`embedded postgres exited with ${code}: ${stderr}`);
            } finally {
              clearTimeout(timer);
            }
          })();
          return stopping;
        },
      });
    };
    child.stdout.on('data', onData);
    void exited.then((code) =>
      reject(new Error(`embedded postgres exited with ${code} before starting: ${stderr}`)),
    );
  });
}

async function serve(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as EmbeddedPostgresOptions;
  const server = await startEmbeddedPostgres(options);
  const { stop, ...info } = server;
  process.stdout.write(`${JSON.stringify(info)}\n`);
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.stdin.on('end', shutdown);
  process.stdin.resume();
  process.on('SIGTERM', shutdown);
}

if (require.main === module) {
  serve().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
