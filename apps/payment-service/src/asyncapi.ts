import type { AsyncApiService } from '@sage/saga-outbox';
import { paymentServiceContracts } from '../../shared/contracts';
import { sampleAsyncApiServers } from '../../shared/sample-asyncapi-servers';
import { sampleTopology } from '../../shared/sample-topology';

/**
 * payment-service as AsyncAPI describes it (`npm run docs:asyncapi` writes
 * docs/asyncapi/payment-service.json): the order saga's commands it handles, the replies it sends to
 * order-service's reply destination, and the `order.confirmed` events it records.
 */
export const asyncapi: AsyncApiService = {
  id: 'payment-service',
  title: 'payment-service',
  version: '1.0.0',
  description:
    'Authorizes and voids card payments for the order saga, and keeps a receipt of every confirmed order.',
  ...paymentServiceContracts,
  // The participant answers on the command's `sage-reply-to`: in the samples, order-service's.
  replyTo: [sampleTopology().orderReplies],
  consumerGroup: sampleTopology().paymentConsumer,
  consumerGroups: { 'order.confirmed': sampleTopology().paymentReceiptsConsumer },
  servers: sampleAsyncApiServers,
};
