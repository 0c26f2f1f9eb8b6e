import { InvalidOptionsError } from '../errors';
import type { Broker } from '../ports/broker';

/** The relay's claim lease when `leaseMs` is not set and the broker needs no more (see relayLeaseMs). */
export const DEFAULT_RELAY_LEASE_MS = 30_000;

/**
 * How much longer than a claim's longest time at the broker its lease must be: half as long
 * again, the room to record the outcome (statements that may queue for a pooled connection) and
 * to survive a pause of the process.
 */
const LEASE_HEADROOM = 1.5;

export interface RelayLeaseInputs {
  /** `leaseMs` as configured (already checked to be a positive number), or undefined. */
  leaseMs: number | undefined;
  broker: Broker;
  batchSize: number;
  publishBatchSize: number;
  maxInFlight: number;
}

/**
 * The claim lease a relay runs with. A claimed batch waits at the broker for up to the broker's
 * `publishTimeoutMs` per round of publish calls (`batchSize / publishBatchSize` calls,
 * `maxInFlight` at a time). If the lease ran out before the outcome is recorded, another relay's
 * reaper would hand the rows to the next claim: published twice, and a key's next message could
 * overtake the late one. So the lease must be at least 1.5 times that; unset, it is 30 s or that
 * minimum, whichever is longer. A broker that states no `publishTimeoutMs` is not checked.
 *
 * Throws InvalidOptionsError (`outbox.relay.leaseMs`) naming the numbers and the ways out.
 */
export function relayLeaseMs(o: RelayLeaseInputs): number {
  const timeoutMs = o.broker.publishTimeoutMs;
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0)
    return o.leaseMs ?? DEFAULT_RELAY_LEASE_MS;
  const rounds = Math.ceil(Math.ceil(o.batchSize / o.publishBatchSize) / o.maxInFlight);
  const atBrokerMs = timeoutMs * rounds;
  const minimumMs = Math.ceil(atBrokerMs * LEASE_HEADROOM);
  if (o.leaseMs === undefined) return Math.max(DEFAULT_RELAY_LEASE_MS, minimumMs);
  if (o.leaseMs >= minimumMs) return o.leaseMs;
  throw new InvalidOptionsError(
    'outbox.relay.leaseMs',
    `must be at least ${minimumMs} ms (1.5 × the longest a claim can wait at the broker), got ${o.leaseMs}. ` +
      `Broker "${o.broker.name}" may take up to its publishTimeoutMs of ${timeoutMs} ms per publish call, ` +
      `and a claim of batchSize ${o.batchSize} is ${describeRounds(o, rounds)}: up to ${atBrokerMs} ms. ` +
      'A lease that runs out first lets another relay publish the same messages again, a later message of a key possibly ahead of them. ' +
      `Fix: raise leaseMs to ${minimumMs} or more (or leave it unset: the default follows the broker), ` +
      "lower the broker's publishTimeoutMs, or claim fewer messages at once (batchSize).",
  );
}

function describeRounds(o: RelayLeaseInputs, rounds: number): string {
  const calls = Math.ceil(o.batchSize / o.publishBatchSize);
  const shape = `${calls} call${calls === 1 ? '' : 's'} of publishBatchSize ${o.publishBatchSize}, maxInFlight ${o.maxInFlight} at a time`;
  return `${shape}, so ${rounds} round${rounds === 1 ? '' : 's'} of calls`;
}
