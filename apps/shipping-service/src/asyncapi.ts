import type { AsyncApiService } from '@sage/saga-outbox';
import { shippingServiceContracts } from '../../shared/contracts';
import { sampleAsyncApiServers } from '../../shared/sample-asyncapi-servers';
import { sampleTopology } from '../../shared/sample-topology';

/**
 * shipping-service as AsyncAPI describes it (`npm run docs:asyncapi` writes
 * docs/asyncapi/shipping-service.json): the `order.confirmed` events it ships, and the
 * `shipment.booked` events it publishes.
 */
export const asyncapi: AsyncApiService = {
  id: 'shipping-service',
  title: 'shipping-service',
  version: '1.0.0',
  description:
    'Ships confirmed orders: for each `order.confirmed` it runs the shipment saga (create the shipment, reserve a carrier, book the pickup, undone when the carrier refuses) and publishes `shipment.booked`.',
  ...shippingServiceContracts,
  consumerGroups: { 'order.confirmed': sampleTopology().shippingConsumer },
  servers: sampleAsyncApiServers,
};
