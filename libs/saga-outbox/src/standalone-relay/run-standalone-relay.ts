/** The standalone relay's process: configuration from the environment, the Nest app, signals. */
import type { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { SageDatabaseUnavailableError, SageSchemaError } from '../core/startup/startup-errors';
import { brokerFromUrl } from '../nest/relay/broker-url';
import { NestSageLogger } from '../nest/nest-sage-logger';
import { Logger as PinoLogger } from 'nestjs-pino';
import { readHealthPort } from './health-port';
import { readRelayConfig } from './relay-config';
import { RelayAppModule } from './relay-app.module';

/** Time beyond the relay's own bound for closing the broker and the pool. */
const SHUTDOWN_MARGIN_MS = 5_000;
const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/** Runs the relay until SIGTERM / SIGINT (see the `sage-relay` bin for the environment it reads). */
export async function runStandaloneRelay(logger: Logger): Promise<void> {
  const config = readRelayConfig(process.env);
  const healthPort = readHealthPort(process.env);
  const broker = brokerFromUrl(
    config.brokerUrl,
    'SAGE_BROKER_URL',
    new NestSageLogger('SageBroker'),
    { nats: config.nats, kafka: config.kafka, rabbitmq: config.rabbitmq },
  );
  if (config.brokerUrl.startsWith('memory:'))
    logger.warn(
      'SAGE_BROKER_URL is memory://: messages are marked sent but only this process sees them (tests and demos only)',
    );
  const app = await NestFactory.create(
    RelayAppModule.register({
      postgres: {
        url: config.databaseUrl,
        ...(config.postgres.ssl !== undefined ? { ssl: config.postgres.ssl } : {}),
        ...(config.postgres.password !== undefined ? { password: config.postgres.password } : {}),
      },
      schema: config.schema,
      runMigrations: config.runMigrations,
      retryAttempts: config.dbRetryAttempts,
      retryDelay: config.dbRetryDelayMs,
      broker,
      outbox: {
        relay: {
          shutdownTimeoutMs: config.shutdownTimeoutMs,
          mode: config.mode,
          ...(config.walSlot !== undefined || config.walMaxWindow !== undefined
            ? {
                wal: {
                  ...(config.walSlot !== undefined ? { slot: config.walSlot } : {}),
                  ...(config.walMaxWindow !== undefined ? { maxWindow: config.walMaxWindow } : {}),
                },
              }
            : {}),
        },
      },
    }),
    // Throw instead of aborting the process, so the error below is printed and the exit code is 1.
    { abortOnError: false, bufferLogs: true },
  ).catch((error: unknown) => {
    throw inRelayTerms(error);
  });
  app.useLogger(app.get(PinoLogger));
  app.flushLogs(); // JSON from here on (listen() would flush too, but without HEALTH_PORT there is none)
  for (const signal of SIGNALS) {
    process.once(signal, () => {
      logger.log(`${signal}: draining the relay (at most ${config.shutdownTimeoutMs} ms)`);
      setTimeout(() => {
        logger.error('shutdown did not finish within its bound; exiting without it');
        process.exit(1);
      }, config.shutdownTimeoutMs + SHUTDOWN_MARGIN_MS).unref();
    });
  }
  // Exit 0 once the shutdown hooks ran (Nest re-raises the signal otherwise: exit by signal).
  app.enableShutdownHooks([...SIGNALS], { useProcessExit: true });
  if (healthPort === undefined) {
    await app.init();
  } else {
    await app.listen(healthPort, '0.0.0.0');
    const url = await app.getUrl();
    logger.log(`health and metrics on ${url} (/health/live, /health/ready, /metrics)`);
  }
}

/**
 * The database errors name the module's options; the relay is configured by environment, so its
 * message names the variables instead (`postgres.url` is DATABASE_URL).
 */
function inRelayTerms(error: unknown): unknown {
  if (error instanceof SageDatabaseUnavailableError || error instanceof SageSchemaError)
    error.message = error.message
      .replaceAll('option postgres.url', 'DATABASE_URL')
      .replaceAll('postgres.ssl.ca', 'SAGE_DB_SSL_CA')
      .replaceAll('postgres.ssl.servername', 'the host in DATABASE_URL')
      .replaceAll(
        'set postgres.ssl (e.g. { ca: <the CA certificate> })',
        'set SAGE_DB_SSL_CA (or SAGE_DB_SSL=true)',
      )
      .replaceAll('remove postgres.ssl', 'unset SAGE_DB_SSL*')
      .replaceAll('postgres.url', 'DATABASE_URL')
      .replaceAll('retryAttempts, retryDelay', 'SAGE_DB_RETRY_ATTEMPTS, SAGE_DB_RETRY_DELAY_MS')
      .replaceAll(
        'runMigrations: true (the default with postgres, except under NODE_ENV=production)',
        'SAGE_RUN_MIGRATIONS=true (the default, except under NODE_ENV=production)',
      )
      .replaceAll('runMigrations: true', 'SAGE_RUN_MIGRATIONS=true');
  return error;
}
