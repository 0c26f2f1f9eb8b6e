import type { AsyncApiService } from '@sage/saga-outbox';
import { orderServiceContracts } from '../../shared/contracts';
import { sampleAsyncApiServers } from '../../shared/sample-asyncapi-servers';
import { sampleTopology } from '../../shared/sample-topology';

/**
 * order-service as AsyncAPI describes it (`npm run docs:asyncapi` writes
 * docs/asyncapi/order-service.json): the `order.confirmed` events it publishes, the order saga's
 * commands to payment-service and their replies, which come back on its saga reply destination.
 */
export const asyncapi: AsyncApiService = {
  id: 'order-service',
  title: 'order-service',
  version: '1.0.0',
  description:
    'Takes orders and runs the order saga: reserves stock, asks payment-service to authorize the payment (voiding it when a later step fails), and publishes `order.confirmed`.',
  ...orderServiceContracts,
  replyDestination: sampleTopology().orderReplies,
  servers: sampleAsyncApiServers,
};
