import { LostDeliveries } from './lost-deliveries';

const first = (deliverySequence: number, streamSequence: number) => ({
  deliverySequence,
  streamSequence,
  deliveryCount: 1,
});

it('sees no loss while deliveries follow one another', () => {
  const lost = new LostDeliveries();
  expect(lost.observe(first(1, 3))).toBeUndefined();
  expect(lost.observe(first(2, 7))).toBeUndefined();
});

it('after an interruption, a jump in the delivery sequence means the stream range since the highest message received', () => {
  const lost = new LostDeliveries();
  lost.observe(first(1, 10));
  lost.observe(first(2, 11));
  lost.interrupted();
  // Deliveries 3 and 4 never arrived (stream 12 and 13): the next first delivery is stream 14.
  expect(lost.observe(first(5, 14))).toEqual({ after: 11, before: 14 });
  expect(lost.observe(first(6, 15))).toBeUndefined();
});

it('waits for a first delivery to bound the range (redeliveries come first)', () => {
  const lost = new LostDeliveries();
  lost.observe(first(1, 20));
  lost.interrupted();
  expect(
    lost.observe({ deliverySequence: 4, streamSequence: 5, deliveryCount: 2 }),
  ).toBeUndefined();
  expect(lost.observe(first(5, 23))).toEqual({ after: 20, before: 23 });
});

it('takes a jump without an interruption for another member of the group, not a loss', () => {
  const lost = new LostDeliveries();
  lost.observe(first(1, 1));
  expect(lost.observe(first(3, 3))).toBeUndefined();
});

it('an interruption with nothing lost (the next delivery follows on) is no loss', () => {
  const lost = new LostDeliveries();
  lost.observe(first(1, 1));
  lost.interrupted();
  expect(lost.observe(first(2, 2))).toBeUndefined();
});

it('a server restored from older state numbering deliveries again is no loss', () => {
  const lost = new LostDeliveries();
  lost.observe(first(50, 50));
  lost.interrupted();
  expect(lost.observe(first(48, 49))).toBeUndefined();
  expect(lost.observe(first(49, 50))).toBeUndefined();
});
