import type { BrokerMessage } from '@sage/saga-outbox';

/**
 * The message the codec tests send through each broker's wire shape and back: a key, a non-ASCII
 * payload, a `traceparent` and a millisecond time, so every mapped field is exercised.
 */
export const SENT_MESSAGE: BrokerMessage = Object.freeze({
  id: '0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d',
  destination: 'orders',
  key: 'order-1',
  type: 'order.placed',
  payload: { n: 1, text: 'zażółć' },
  headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
  time: new Date('2025-01-02T03:04:05.678Z'),
});
