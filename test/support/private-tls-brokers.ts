/**
 * RabbitMQ and Kafka servers of one test file's own, configured for TLS and authentication with a
 * test CA (test/support/test-ca.ts): the servers scripts/services.sh runs, pointed at a fresh
 * directory and free ports (SAGE_SERVICES_DIR and the port variables), with extra configuration
 * appended to the generated files (SAGE_RABBITMQ_EXTRA_CONF, SAGE_KAFKA_EXTRA_PROPERTIES,
 * SAGE_KAFKA_SCRAM_USERS). The shared servers are never touched. Both start slowly (~10 s): one
 * per test file.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeTestCa, type TestCa } from './test-ca';

const run = promisify(execFile);
const SCRIPT = join(__dirname, '..', '..', 'scripts', 'services.sh');

abstract class PrivateServer {
  protected constructor(
    /** SAGE_SERVICES_DIR of this server (the CA is in `${dir}/ca`); removed by `destroy()`. */
    readonly dir: string,
    readonly ca: TestCa,
    private readonly service: 'rabbitmq' | 'kafka',
    private readonly env: Record<string, string>,
  ) {}

  protected async services(command: 'start' | 'stop'): Promise<void> {
    const env: NodeJS.ProcessEnv = {};
    // None of the caller's SAGE_* (ports of the shared servers, say) may leak into ours.
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SAGE_')) env[k] = v;
    try {
      await run('bash', [SCRIPT, command, this.service], {
        env: { ...env, SAGE_SERVICES_DIR: this.dir, ...this.env },
        maxBuffer: 10 * 1024 * 1024,
      });
    } catch (error) {
      const { stderr } = error as { stderr?: string };
      throw new Error(`services.sh ${command} ${this.service} (${this.dir}) failed: ${stderr}`, {
        cause: error,
      });
    }
  }

  /** Stops the server and removes its directory. Idempotent. */
  async destroy(): Promise<void> {
    try {
      await this.services('stop');
    } finally {
      await rm(this.dir, { recursive: true, force: true });
    }
  }
}

/**
 * RabbitMQ with a TLS listener on `tlsPort` that requires a client certificate signed by the test
 * CA (`verify_peer`, `fail_if_no_peer_cert`), user `sage`/`PASSWORD`; its plain listener
 * (`plainPort`) is there because services.sh waits on it.
 */
export class PrivateTlsRabbitMq extends PrivateServer {
  static readonly USER = 'sage';
  static readonly PASSWORD = 'rabbit-tls-pw';

  private constructor(
    dir: string,
    ca: TestCa,
    readonly plainPort: number,
    readonly tlsPort: number,
    env: Record<string, string>,
  ) {
    super(dir, ca, 'rabbitmq', env);
  }

  static async start(): Promise<PrivateTlsRabbitMq> {
    const dir = join(tmpdir(), `sage-rmq-tls-${process.pid}-${randomBytes(4).toString('hex')}`);
    const ca = await makeTestCa(join(dir, 'ca'));
    const [plainPort, tlsPort, distPort, epmdPort] = await freePorts(4);
    const server = new PrivateTlsRabbitMq(dir, ca, plainPort!, tlsPort!, {
      SAGE_RABBITMQ_PORT: String(plainPort),
      SAGE_RABBITMQ_DIST_PORT: String(distPort),
      SAGE_RABBITMQ_EPMD_PORT: String(epmdPort),
      SAGE_RABBITMQ_USER: PrivateTlsRabbitMq.USER,
      SAGE_RABBITMQ_PASSWORD: PrivateTlsRabbitMq.PASSWORD,
      SAGE_RABBITMQ_EXTRA_CONF: [
        `listeners.ssl.default = 127.0.0.1:${tlsPort}`,
        `ssl_options.cacertfile = ${ca.paths.caCert}`,
        `ssl_options.certfile = ${ca.paths.serverCert}`,
        `ssl_options.keyfile = ${ca.paths.serverKey}`,
        'ssl_options.verify = verify_peer',
        'ssl_options.fail_if_no_peer_cert = true',
      ].join('\n'),
    });
    await server.services('start');
    return server;
  }

  /** `amqps://user:password@127.0.0.1:tlsPort` (or with other credentials). */
  tlsUrl(password = PrivateTlsRabbitMq.PASSWORD, user = PrivateTlsRabbitMq.USER): string {
    return `amqps://${user}:${password}@127.0.0.1:${this.tlsPort}`;
  }
}

/**
 * Kafka (KRaft) with a SASL_SSL listener on `saslPort`: server certificate of the test CA (PEM
 * keystore and truststore files), SASL PLAIN for `plain-user`, SCRAM-SHA-256 and SCRAM-SHA-512 for
 * `scram-user`. Its PLAINTEXT listener (`plainPort`) carries the broker's own traffic and is what
 * services.sh waits on.
 */
export class PrivateSaslKafka extends PrivateServer {
  static readonly PLAIN_USER = 'plain-user';
  static readonly PLAIN_PASSWORD = 'plain-pw-k4fka';
  static readonly SCRAM_USER = 'scram-user';
  static readonly SCRAM_PASSWORD = 'scram-pw-k4fka';

  private constructor(
    dir: string,
    ca: TestCa,
    readonly plainPort: number,
    readonly saslPort: number,
    env: Record<string, string>,
  ) {
    super(dir, ca, 'kafka', env);
  }

  static async start(): Promise<PrivateSaslKafka> {
    const dir = join(tmpdir(), `sage-kafka-sasl-${process.pid}-${randomBytes(4).toString('hex')}`);
    const ca = await makeTestCa(join(dir, 'ca'));
    // A PEM keystore file holds the private key and the certificate chain.
    const keystore = join(dir, 'ca', 'server-keystore.pem');
    await writeFile(keystore, `${ca.serverKey}${ca.serverCert}`);
    const [plainPort, saslPort, controllerPort] = await freePorts(3);
    const { PLAIN_USER, PLAIN_PASSWORD, SCRAM_USER, SCRAM_PASSWORD } = PrivateSaslKafka;
    const host = '127.0.0.1';
    const server = new PrivateSaslKafka(dir, ca, plainPort!, saslPort!, {
      SAGE_KAFKA_PORT: String(plainPort),
      SAGE_KAFKA_CONTROLLER_PORT: String(controllerPort),
      SAGE_KAFKA_EXTRA_PROPERTIES: [
        `listeners=PLAINTEXT://${host}:${plainPort},CONTROLLER://${host}:${controllerPort},SASL_SSL://${host}:${saslPort}`,
        `advertised.listeners=PLAINTEXT://${host}:${plainPort},SASL_SSL://${host}:${saslPort}`,
        'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL',
        'sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
        `listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${PLAIN_USER}="${PLAIN_PASSWORD}";`,
        'listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
        'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
        'ssl.keystore.type=PEM',
        `ssl.keystore.location=${keystore}`,
        'ssl.truststore.type=PEM',
        `ssl.truststore.location=${ca.paths.caCert}`,
        'ssl.client.auth=none',
      ].join('\n'),
      SAGE_KAFKA_SCRAM_USERS: [
        `SCRAM-SHA-256=[name=${SCRAM_USER},password=${SCRAM_PASSWORD}]`,
        `SCRAM-SHA-512=[name=${SCRAM_USER},password=${SCRAM_PASSWORD}]`,
      ].join(' '),
    });
    await server.services('start');
    return server;
  }

  /** The SASL_SSL bootstrap server, `127.0.0.1:port`. */
  get saslBroker(): string {
    return `127.0.0.1:${this.saslPort}`;
  }
}

/** `count` distinct TCP ports nothing listens on right now (the kernel's picks). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (!address || typeof address !== 'object') throw new Error('no port from the kernel');
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}
