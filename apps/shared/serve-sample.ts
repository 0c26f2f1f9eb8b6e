import 'reflect-metadata';
import { Logger, type DynamicModule, type INestApplication } from '@nestjs/common';
import { startEmbeddedPostgres } from '@sage/saga-outbox/embedded';
import { Logger as PinoLogger } from 'nestjs-pino';
import { createSampleApp } from './sample-http';

/**
 * How the sample services start: `DATABASE_URL` if set, else embedded PGlite (`SAGE_DATA_DIR`
 * keeps its files), HTTP on `HOST`:`PORT` (default 127.0.0.1; `HOST=0.0.0.0` in a container, whose
 * probes and Service reach it from outside), shutdown hooks on, JSON logs (nestjs-pino),
 * `SAGE_SAMPLE_API_KEY` (when set) required as `X-API-Key` on the business routes.
 * `beforeListen` runs once the app is created, before HTTP listens (shipping-service connects its
 * `@EventPattern` transport there).
 */
export async function serveSample(
  name: string,
  defaultPort: number,
  moduleFor: (databaseUrl: string) => DynamicModule,
  beforeListen?: (app: INestApplication) => Promise<void>,
): Promise<void> {
  const logger = new Logger(name);
  let databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    const embedded = await startEmbeddedPostgres({
      dataDir: process.env.SAGE_DATA_DIR,
      maxConnections: 12,
    });
    databaseUrl = embedded.url;
    logger.log(
      `DATABASE_URL not set: using embedded PGlite (${process.env.SAGE_DATA_DIR ?? 'in memory'})`,
    );
  }
  // Logs buffered until nestjs-pino (sampleObservability) takes over as the Nest logger: JSON lines.
  // No X-Powered-By, bounded bodies (apps/shared/sample-http.ts).
  const app = await createSampleApp(moduleFor(databaseUrl), { bufferLogs: true });
  app.useLogger(app.get(PinoLogger));
  app.enableShutdownHooks();
  await beforeListen?.(app);
  const port = Number(process.env.PORT ?? defaultPort);
  const host = process.env.HOST?.trim() || '127.0.0.1';
  await app.listen(port, host);
  logger.log(`listening on http://${host}:${port}`);
}
