import { errorText } from '../../core/error-text';
import { BrokerPublishError } from '../../core/outbox/outbox-errors';
import type {
  Broker,
  BrokerHealth,
  BrokerMessage,
  DeliveredMessage,
  PublishResult,
  SubscribeOptions,
  Subscription,
} from '../../core/ports/broker';
import { abortableSleep as sleep } from '../abortable-sleep';

export interface InMemoryBrokerOptions {
  name?: string;
  /** Delay before each publish is acknowledged (simulates a network round trip). Default 0. */
  latencyMs?: number;
  /** Deliveries of one message to one group before it is dropped as undeliverable. Default 5. */
  maxDeliveries?: number;
}

/** Fault injection: return a failure for a message, or undefined to accept it. */
export type InMemoryFault = (
  message: BrokerMessage,
) => { error: string; retryable: boolean } | undefined;

interface Member {
  handler: (message: DeliveredMessage) => Promise<void>;
  active: boolean;
  running: Set<Promise<void>>;
}

/**
 * The in-memory Broker (tests, the embedded demo). Keeps every accepted message in `published`,
 * in acceptance order, duplicates included, and delivers to subscribers: each consumer group gets
 * each message once (round-robin among its members), redelivered when the handler throws.
 * Faults are injected with `setAvailable(false)` (the whole broker is down) and `setFault()`.
 */
export class InMemoryBroker implements Broker {
  readonly name: string;
  /** Every accepted message, in acceptance order (a message published twice appears twice). */
  readonly published: BrokerMessage[] = [];
  /** Messages whose handlers kept failing past `maxDeliveries`, per group. */
  readonly undeliverable: { group: string; message: BrokerMessage; error: string }[] = [];
  private readonly groups = new Map<string, Map<string, { members: Member[]; next: number }>>();
  private available = true;
  private fault: InMemoryFault | undefined;
  private closed = false;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly options: InMemoryBrokerOptions = {}) {
    this.name = options.name ?? 'memory';
  }

  /** Simulates the broker going down (every publish rejects) and coming back. */
  setAvailable(available: boolean): void {
    this.available = available;
  }

  setFault(fault: InMemoryFault | undefined): void {
    this.fault = fault;
  }

  async publish(batch: readonly BrokerMessage[], signal?: AbortSignal): Promise<PublishResult[]> {
    if (this.closed) throw new BrokerPublishError(this.name, 'broker is closed', true);
    if (this.options.latencyMs) await sleep(this.options.latencyMs, signal);
    if (signal?.aborted)
      throw new BrokerPublishError(this.name, 'publish aborted', true, { cause: signal.reason });
    if (!this.available) throw new BrokerPublishError(this.name, 'broker unavailable', true);
    const results: PublishResult[] = [];
    for (const message of batch) {
      const failure = this.fault?.(message);
      if (failure) {
        results.push({
          id: message.id,
          ok: false,
          error: failure.error,
          retryable: failure.retryable,
        });
        continue;
      }
      const copy = structuredClone(message);
      this.published.push(copy);
      this.deliver(copy);
      results.push({ id: message.id, ok: true });
    }
    for (const wake of this.waiters) wake();
    return results;
  }

  async subscribe(
    destination: string,
    handler: (message: DeliveredMessage) => Promise<void>,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    if (this.closed) throw new BrokerPublishError(this.name, 'broker is closed', false);
    const group = options.group ?? destination;
    let byGroup = this.groups.get(destination);
    if (!byGroup)
      this.groups.set(
        destination,
        (byGroup = new Map<string, { members: Member[]; next: number }>()),
      );
    let entry = byGroup.get(group);
    if (!entry) byGroup.set(group, (entry = { members: [], next: 0 }));
    const member: Member = { handler, active: true, running: new Set() };
    entry.members.push(member);
    const owner = entry;
    return Promise.resolve({
      unsubscribe: async () => {
        member.active = false;
        owner.members = owner.members.filter((m) => m !== member);
        await Promise.allSettled([...member.running]);
      },
    });
  }

  health(): Promise<BrokerHealth> {
    if (this.closed) return Promise.resolve({ up: false, detail: 'closed' });
    return Promise.resolve(
      this.available ? { up: true } : { up: false, detail: 'unavailable (fault injected)' },
    );
  }

  close(): Promise<void> {
    this.closed = true;
    this.groups.clear();
    return Promise.resolve();
  }

  /** Resolves once `predicate` holds over `published` (checked after every publish), or rejects after `timeoutMs`. */
  async waitFor(
    predicate: (published: readonly BrokerMessage[]) => boolean,
    timeoutMs = 10_000,
  ): Promise<void> {
    if (predicate(this.published)) return;
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!predicate(this.published)) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(
            `InMemoryBroker.waitFor: condition not met within ${timeoutMs} ms (${this.published.length} published)`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  private deliver(message: BrokerMessage): void {
    const byGroup = this.groups.get(message.destination);
    if (!byGroup) return;
    for (const [group, entry] of byGroup) {
      if (!entry.members.length) continue;
      void this.deliverToGroup(group, entry, message, 1);
    }
  }

  private async deliverToGroup(
    group: string,
    entry: { members: Member[]; next: number },
    message: BrokerMessage,
    attempt: number,
  ): Promise<void> {
    const member = entry.members[entry.next++ % Math.max(entry.members.length, 1)];
    if (!member?.active) return;
    const run = (async () => {
      await Promise.resolve(); // deliver asynchronously, never inside publish()
      await member.handler({ ...structuredClone(message), deliveryAttempt: attempt });
    })();
    member.running.add(run);
    try {
      await run;
    } catch (error) {
      const reason = errorText(error);
      if (attempt >= (this.options.maxDeliveries ?? 5))
        this.undeliverable.push({ group, message, error: reason });
      else void this.deliverToGroup(group, entry, message, attempt + 1);
    } finally {
      member.running.delete(run);
    }
  }
}
