/**
 * Demo helper: a second order-service worker (no broker: its outbox is published by the demo's
 * worker B). It starts one saga and, as the saga's reserve-stock step starts, reports it and
 * freezes (the thread blocks: the saga stays owned by this worker, its lease no longer renewed)
 * until demo.ts kills it with SIGKILL.
 */
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { SagaService } from '@sage/saga-outbox';
import { DEMO_ORDER_SERVICE, DEMO_WORKER_LEASE_MS } from './demo-settings';
import { OrderServiceModule } from '../order-service.module';

async function main(): Promise<void> {
  const [databaseUrl, inputJson] = process.argv.slice(2);
  const app = await NestFactory.createApplicationContext(
    OrderServiceModule.register({
      ...DEMO_ORDER_SERVICE,
      databaseUrl: databaseUrl!,
      http: false,
      saga: { leaseMs: DEMO_WORKER_LEASE_MS, ownerId: 'demo-worker-A' },
    }),
    { logger: ['error'] },
  );
  const sagas = app.get(SagaService);
  sagas.onEvent((e) => {
    if (e.type === 'step.started' && e.step === 'reserve-stock') {
      process.stdout.write(JSON.stringify({ stepStarted: e.step, sagaId: e.sagaId }) + '\n');
      // Hang here, synchronously, without burning CPU: the worker is stuck mid-saga.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    }
  });
  await sagas.start('order-placement', JSON.parse(inputJson!), { idempotencyKey: 'ord-1007' });
}

void main();
