import { defineSaga } from '../../core/saga/saga-builder';
import { crashBoundaries } from './crash-boundaries';

const noop = (): undefined => undefined;
const command = () => ({ destination: 'payments', type: 'payment.authorize', payload: {} });

/** The sample order saga's shape (apps/order-service): a fork, a remote step, a pivot, a last step. */
const orderShaped = defineSaga('order-shaped', { failureStrategy: 'WAIT_ALL' })
  .step('create-order', { run: noop, compensate: noop })
  .step('reserve-stock', { dependsOn: ['create-order'], run: noop, compensate: noop })
  .step('authorize-payment', {
    kind: 'remote',
    dependsOn: ['create-order'],
    run: command,
    compensate: command,
  })
  .step('confirm-order', {
    dependsOn: ['reserve-stock', 'authorize-payment'],
    pivot: true,
    run: noop,
  })
  .step('record-confirmation', { dependsOn: ['confirm-order'], run: noop })
  .build();

describe('crashBoundaries', () => {
  it('lists, for the order saga, every forward boundary, then each failure with the compensations it leads to', () => {
    expect(crashBoundaries(orderShaped).map((b) => b.name)).toEqual([
      'crash before "create-order" committed',
      'crash after "create-order" committed, before "reserve-stock" and "authorize-payment" started',
      'crash before "reserve-stock" committed',
      'crash after "reserve-stock" committed, before "confirm-order" started',
      'crash before "authorize-payment" committed its command',
      'crash after "authorize-payment" committed its command, before its reply',
      'crash before "confirm-order" committed',
      'crash after "confirm-order" committed, before "record-confirmation" started',
      'crash before "record-confirmation" committed',
      'crash after "record-confirmation" committed, before the saga completed',
      '"create-order" fails for good; crash after its failure was recorded, before compensation started',
      '"reserve-stock" fails for good; crash after its failure was recorded, before compensation started',
      '"reserve-stock" fails for good; crash before the compensation of "create-order" committed',
      '"reserve-stock" fails for good; crash after the compensation of "create-order" committed',
      '"authorize-payment" fails for good; crash after its failure was recorded, before compensation started',
      '"authorize-payment" fails for good; crash before the compensation of "create-order" committed',
      '"authorize-payment" fails for good; crash after the compensation of "create-order" committed',
      '"confirm-order" fails for good; crash after its failure was recorded, before compensation started',
      '"confirm-order" fails for good; crash before the compensation of "authorize-payment" committed its command',
      '"confirm-order" fails for good; crash after the compensation of "authorize-payment" committed its command',
      '"confirm-order" fails for good; crash before the compensation of "reserve-stock" committed',
      '"confirm-order" fails for good; crash after the compensation of "reserve-stock" committed',
      '"confirm-order" fails for good; crash before the compensation of "create-order" committed',
      '"confirm-order" fails for good; crash after the compensation of "create-order" committed',
    ]);
  });

  it('names each boundary once, and says where the worker dies and which step fails first', () => {
    const boundaries = crashBoundaries(orderShaped);
    expect(new Set(boundaries.map((b) => b.name)).size).toBe(boundaries.length);
    expect(
      boundaries.find((b) =>
        b.name.startsWith(
          '"confirm-order" fails for good; crash before the compensation of "reserve-stock"',
        ),
      ),
    ).toEqual({
      name: '"confirm-order" fails for good; crash before the compensation of "reserve-stock" committed',
      crash: { kind: 'before-commit', step: 'reserve-stock', phase: 'compensate' },
      failingStep: 'confirm-order',
    });
    expect(boundaries[1]).toEqual({
      name: 'crash after "create-order" committed, before "reserve-stock" and "authorize-payment" started',
      crash: { kind: 'after-commit', step: 'create-order', phase: 'forward' },
    });
  });

  it('has no compensation scenarios past the pivot, nor for steps with nothing to undo', () => {
    const saga = defineSaga('validate-then-pay')
      .step('validate', { compensatable: false, run: noop })
      .step('pay', { dependsOn: ['validate'], pivot: true, run: noop })
      .step('notify', { dependsOn: ['pay'], run: noop })
      .build();
    const failing = crashBoundaries(saga).filter((b) => b.failingStep);
    expect(failing.map((b) => b.name)).toEqual([
      '"validate" fails for good; crash after its failure was recorded, before compensation started',
      '"pay" fails for good; crash after its failure was recorded, before compensation started',
    ]);
  });
});
