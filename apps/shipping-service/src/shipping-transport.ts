import type { INestApplication } from '@nestjs/common';
import {
  DATA_PROTECTOR,
  OUTBOX_BROKER,
  SAGE_CONTRACTS,
  type Broker,
  type DataProtector,
  type SageContracts,
} from '@sage/saga-outbox';
import { SageBrokerTransport } from '@sage/saga-outbox/microservices';
import type { SampleTopology } from '../../shared/sample-topology';

/**
 * Connects shipping-service's `@EventPattern` handlers to the broker SagaOutboxModule built, through
 * SageBrokerTransport (the adapter's own delivery: ack after the handler, redelivery when it
 * throws, a key's messages one at a time), with the module's decryption (`protector`: customer
 * fields of `order.confirmed` arrive in plaintext) and contract check (`contracts`: checked, version
 * 1 upcast to 2), and starts it. Call before `app.listen()`. No broker configured: nothing to consume.
 */
export async function startShippingTransport(
  app: INestApplication,
  topology: SampleTopology,
): Promise<void> {
  const broker = app.get<Broker | null>(OUTBOX_BROKER);
  if (!broker) return;
  app.connectMicroservice(
    {
      strategy: new SageBrokerTransport({
        broker,
        group: topology.shippingConsumer,
        protector: app.get<DataProtector<unknown> | null>(DATA_PROTECTOR),
        contracts: app.get<SageContracts | null>(SAGE_CONTRACTS)?.incoming,
      }),
    },
    // The HTTP app's pipes, guards and filters are for HTTP requests.
    { inheritAppConfig: false },
  );
  await app.startAllMicroservices();
}
