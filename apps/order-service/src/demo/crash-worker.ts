/**
 * Demo helper: a second order-service worker whose payment processor hangs. It starts one saga,
 * reports when the payment step is under way, and waits to be killed with SIGKILL by demo.ts.
 */
import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { SagaService } from '@sage/saga-outbox';
import { OrderServiceModule } from '../order-service.module';
import { PaymentGateway, type AuthorizeRequest } from '../orders/payment-gateway';

@Injectable()
class HangingGateway extends PaymentGateway {
  authorize(_request: AuthorizeRequest): Promise<{ authorization: string }> {
    return new Promise(() => undefined);
  }
}

async function main(): Promise<void> {
  const [databaseUrl, inputJson] = process.argv.slice(2);
  const app = await NestFactory.createApplicationContext(
    OrderServiceModule.register({
      databaseUrl: databaseUrl!,
      http: false,
      paymentGateway: HangingGateway,
      saga: { leaseMs: 1500, ownerId: 'demo-worker-A' },
    }),
    { logger: ['error'] },
  );
  const sagas = app.get(SagaService);
  sagas.onEvent((e) => {
    if (e.type === 'step.started' && e.step === 'authorize-payment')
      process.stdout.write(JSON.stringify({ paymentStarted: e.sagaId }) + '\n');
  });
  await sagas.start('order-placement', JSON.parse(inputJson!), { idempotencyKey: 'ord-1007' });
}

void main();
