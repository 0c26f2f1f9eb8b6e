import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { startEmbeddedPostgres } from '@sage/saga-outbox';
import { PaymentServiceModule } from './payment-service.module';

async function bootstrap(): Promise<void> {
  const logger = new Logger('payment-service');
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
  const app = await NestFactory.create(PaymentServiceModule.register({ databaseUrl }));
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3001);
  await app.listen(port, '127.0.0.1');
  logger.log(`listening on http://127.0.0.1:${port}`);
}

void bootstrap();
