import type { SagaRecord, SagaStatus, StepStatus } from '@sage/saga-outbox';
import { orderViewOf } from './order-view';
import type { PlaceOrderInput } from './order.types';

const input: PlaceOrderInput = {
  orderId: 'ord-1',
  customer: { id: 'cus-1', name: 'Alice', email: 'alice@example.com' },
  sku: 'widget',
  quantity: 1,
  amountCents: 1200,
  currency: 'EUR',
  paymentMethod: { token: 'tok_visa', last4: '4242' },
};

const STEPS = [
  'create-order',
  'reserve-stock',
  'authorize-payment',
  'confirm-order',
  'record-confirmation',
];

function saga(
  status: SagaStatus,
  steps: Record<string, StepStatus> = {},
  failedStep: string | null = null,
): SagaRecord {
  return {
    id: 'saga-1',
    name: 'order-placement',
    version: 'v1',
    status,
    input: input as never,
    idempotencyKey: 'ord-1',
    owner: 'worker-1',
    leaseUntil: new Date(),
    deadlineAt: null,
    error: 'step "x" failed: internal detail',
    failedStep,
    wakeAt: null,
    wakeSeq: 3,
    createdAt: new Date('2026-01-01T10:00:00Z'),
    updatedAt: new Date('2026-01-01T10:00:02Z'),
    steps: STEPS.map((name) => ({
      name,
      status: steps[name] ?? 'pending',
      attempts: 1,
      compensationAttempts: 0,
      result: null,
      error: 'internal detail',
      startedAt: null,
      completedAt: null,
      compensatedAt: null,
      replyDeadline: null,
    })),
  };
}

describe('OrderView', () => {
  it('holds the order in business terms and nothing of the saga', () => {
    expect(orderViewOf(saga('completed'))).toEqual({
      orderId: 'ord-1',
      status: 'confirmed',
      amountCents: 1200,
      currency: 'EUR',
      last4: '4242',
      placedAt: '2026-01-01T10:00:00.000Z',
      updatedAt: '2026-01-01T10:00:02.000Z',
      failureReason: null,
    });
  });

  it.each<[string, SagaRecord, string, string | null]>([
    ['being placed', saga('running', { 'create-order': 'completed' }), 'processing', null],
    [
      'waiting for payment-service',
      saga('waiting', { 'authorize-payment': 'waiting' }),
      'awaiting-payment',
      null,
    ],
    ['past the pivot', saga('running', { 'confirm-order': 'completed' }), 'confirmed', null],
    [
      'out of stock',
      saga('compensated', { 'reserve-stock': 'failed' }, 'reserve-stock'),
      'cancelled',
      'The item is out of stock.',
    ],
    [
      'declined',
      saga('compensating', { 'authorize-payment': 'failed' }, 'authorize-payment'),
      'cancelling',
      'The payment was declined.',
    ],
    [
      'payment timed out',
      saga('compensated', { 'authorize-payment': 'compensated' }, 'authorize-payment'),
      'cancelled',
      'The payment could not be confirmed in time.',
    ],
    [
      'the pivot failed',
      saga('compensated', { 'confirm-order': 'failed' }, 'confirm-order'),
      'cancelled',
      'The order could not be completed.',
    ],
    [
      'a compensation failed',
      saga('failed', {}, 'reserve-stock'),
      'on-hold',
      'The order could not be cancelled automatically; our team will contact you.',
    ],
  ])('%s', (_label, record, status, failureReason) => {
    const view = orderViewOf(record);
    expect({ status: view.status, failureReason: view.failureReason }).toEqual({
      status,
      failureReason,
    });
    expect(JSON.stringify(view)).not.toMatch(/internal detail|worker-1|saga-1|Alice|tok_visa/);
  });
});
