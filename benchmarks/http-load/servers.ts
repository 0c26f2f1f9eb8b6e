/**
 * The PostgreSQL and broker servers the run uses: those of the environment (scripts/services.sh's
 * shared servers, PGHOST/PGPORT and SAGE_*_URL; the default, what CI has), or with
 * `--private-servers` a private pair that scripts/services.sh starts on a directory and ports of
 * the run's own (as the chaos run does) and deletes at the end. Private servers keep other work on
 * the machine out of the figures and the outcome (another job's load and long transactions on a
 * shared PostgreSQL).
 */
import path from 'node:path';
import { PrivateServices, freePortBase } from '../chaos/services';
import type { LoadBroker } from './options';
import { brokerUrl, pgServer, type StackServers } from './stack';

export interface RunServers extends StackServers {
  describe: string;
  /** Stops and deletes private servers; nothing for the shared ones. */
  release(): Promise<void>;
}

export function sharedServers(broker: LoadBroker): RunServers {
  const pg = pgServer();
  return {
    pg,
    brokerUrl: brokerUrl(broker),
    describe: `shared servers (PostgreSQL ${String(pg.host)}:${pg.port})`,
    release: () => Promise.resolve(),
  };
}

export async function privateServers(
  broker: LoadBroker,
  runId: string,
  say: (line: string) => void,
): Promise<RunServers> {
  const services = new PrivateServices(
    path.join(process.env.TMPDIR ?? '/tmp', `sage-http-load-${runId}`, 'servers'),
    await freePortBase(27_600),
  );
  const release = (): Promise<void> => services.destroy();
  try {
    const started = Date.now();
    await services.start('postgres', broker);
    say(`private PostgreSQL and ${broker} up in ${Date.now() - started} ms (${services.dir})`);
  } catch (error) {
    await release();
    throw error;
  }
  const address = services.brokerAddress(broker);
  return {
    pg: {
      host: '127.0.0.1',
      port: services.ports.postgres,
      user: 'sage',
      password: services.password,
      database: 'sage',
    },
    brokerUrl: broker === 'kafka' ? `kafka://${address}` : address,
    describe: `private servers (PostgreSQL 127.0.0.1:${services.ports.postgres}, ${services.dir})`,
    release,
  };
}
