import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { OUTBOX_BROKER, type Broker } from '@sage/saga-outbox';
import { startEmbeddedPostgres } from '@sage/saga-outbox/embedded';
import { SageBrokerTransport } from '@sage/saga-outbox/microservices';
import { AppModule } from './app.module';

async function bootstrap() {
  // No DATABASE_URL: PostgreSQL embedded in the process (PGlite), for a first run without servers.
  const databaseUrl = process.env.DATABASE_URL ?? (await startEmbeddedPostgres()).url;
  // kafka://host:9092, amqp://user:pass@host:5672, nats://host:4222, or memory:// (in process).
  const brokerUrl = process.env.SAGE_BROKER_URL ?? 'memory://';

  const app = await NestFactory.create(AppModule.forRoot({ databaseUrl, brokerUrl }));
  // @EventPattern handlers consume from the broker Sage publishes to.
  const broker = app.get<Broker>(OUTBOX_BROKER);
  app.connectMicroservice({ strategy: new SageBrokerTransport({ broker, group: 'shipping' }) });
  app.enableShutdownHooks();
  await app.startAllMicroservices();
  await app.listen(Number(process.env.PORT ?? 3000));
}

void bootstrap();
