import { errorText } from '../../core/error-text';
import { silentLogger } from '../../core/ports/logger';
import { BrokerPublishError, BrokerUnavailableError } from '../../core/outbox/outbox-errors';
import type {
  Broker,
  BrokerHealth,
  BrokerMessage,
  DeadLetteredMessage,
  DeliveredMessage,
  PublishResult,
  SubscribeOptions,
  Subscription,
} from '../../core/ports/broker';
import { DeliveryDeferredError } from '../../core/errors';
import { integerOption } from '../../core/options';
import { abortableSleep as sleep } from '../abortable-sleep';
import { exponentialDelay } from '../backoff';
import { toCloudEventHeaders } from '../cloudevents-headers';
import { DeadLetterReporter, deadLetterDestinationOf } from '../dead-letters';
import {
  DEFAULT_MAX_DELIVERIES,
  DEFAULT_MAX_MESSAGE_BYTES,
  inboundMessage,
  type Inbound,
} from '../inbound-message';

export interface InMemoryBrokerOptions {
  name?: string;
  /** Delay before each publish is acknowledged (simulates a network round trip). Default 0. */
  latencyMs?: number;
  /**
   * Attempts at a message whose handler keeps failing, per group, before it is dead-lettered
   * (`deadLetters`); `SubscribeOptions.maxDeliveries` overrides it. Default 10.
   */
  maxDeliveries?: number;
  /** Largest body (its JSON) handed to a handler; larger ones are dead-lettered. Default 1 MiB. */
  maxMessageBytes?: number;
  /** First wait before a failed handler is retried, doubling, capped at 1 s (or at itself, if longer). Default 5 ms. */
  redeliveryDelayMs?: number;
}

/** A message as it travels: what a real broker would carry (the adapters' wire form). */
export interface InMemoryWireMessage {
  destination: string;
  /** Transport headers, CloudEvents attributes included (`ce-id` is the message id). */
  headers: Record<string, string>;
  /** The body bytes (the JSON payload, for a Sage message). */
  body: Uint8Array;
}

/** A message the broker dead-lettered, with what it carried. */
export interface InMemoryDeadLetter extends DeadLetteredMessage {
  /** The message as decoded, when it could be (reason `max-deliveries`). */
  message: BrokerMessage | undefined;
  wire: InMemoryWireMessage;
}

/** Fault injection: return a failure for a message, or undefined to accept it. */
export type InMemoryFault = (
  message: BrokerMessage,
) => { error: string; retryable: boolean } | undefined;

interface Member {
  handler: (message: DeliveredMessage) => Promise<void>;
  active: boolean;
  running: Set<Promise<void>>;
  /** Tail of this member's delivery chain per key: a key's next message waits for the one before. */
  tails: Map<string, Promise<void>>;
}

interface Group {
  name: string;
  members: Member[];
  next: number;
  maxDeliveries: number;
}

/**
 * The in-memory Broker (tests, the embedded demo). Keeps every accepted message in `published`,
 * in acceptance order, duplicates included, and delivers to subscribers: each consumer group gets
 * each message once (round-robin among its members). It behaves like the real adapters: a message
 * travels in its wire form (CloudEvents headers, JSON body) and goes through the same checks
 * (inbound-message.ts); a failed handler is retried, with back-off, while later messages of its
 * key wait (per-key order holds across failures); what cannot be handed over, or fails
 * `maxDeliveries` times, lands in `deadLetters` with its reason. `deliverWire()` injects any
 * message as a foreign producer would send it. Faults are injected with `setAvailable(false)` (the
 * whole broker is down) and `setFault()`.
 */
export class InMemoryBroker implements Broker {
  readonly name: string;
  /** `latencyMs`, when set: every publish takes that long. */
  readonly publishTimeoutMs: number | undefined;
  /** Every accepted message, in acceptance order (a message published twice appears twice). */
  readonly published: BrokerMessage[] = [];
  /** Messages dead-lettered, per group: undecodable on sight, or after `maxDeliveries` failures. */
  readonly deadLetters: InMemoryDeadLetter[] = [];
  private readonly groups = new Map<string, Map<string, Group>>();
  private readonly reporter = new DeadLetterReporter(() => silentLogger);
  private readonly maxDeliveries: number;
  private readonly maxMessageBytes: number;
  private available = true;
  private fault: InMemoryFault | undefined;
  private closed = false;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly options: InMemoryBrokerOptions = {}) {
    this.name = options.name ?? 'memory';
    this.publishTimeoutMs = options.latencyMs || undefined;
    this.maxDeliveries = integerOption('memory.maxDeliveries', options.maxDeliveries, {
      fallback: DEFAULT_MAX_DELIVERIES,
      min: 1,
    });
    this.maxMessageBytes = integerOption('memory.maxMessageBytes', options.maxMessageBytes, {
      fallback: DEFAULT_MAX_MESSAGE_BYTES,
      min: 1,
    });
  }

  onDeadLetter(listener: (event: DeadLetteredMessage) => void): () => void {
    return this.reporter.listen(listener);
  }

  /** Delivers a message in its wire form, as another producer would send it (poison included). */
  deliverWire(wire: InMemoryWireMessage): void {
    this.deliver(wire);
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
    if (!this.available) throw new BrokerUnavailableError(this.name, 'fault injected');
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
      this.deliver({
        destination: copy.destination,
        headers: toCloudEventHeaders(copy, 'sage'),
        body: Buffer.from(JSON.stringify(copy.payload)),
      });
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
    if (!byGroup) this.groups.set(destination, (byGroup = new Map<string, Group>()));
    let entry = byGroup.get(group);
    if (!entry)
      byGroup.set(
        group,
        (entry = {
          name: group,
          members: [],
          next: 0,
          maxDeliveries: this.maxDeliveries,
        }),
      );
    if (options.maxDeliveries !== undefined)
      entry.maxDeliveries = integerOption('subscribe.maxDeliveries', options.maxDeliveries, {
        fallback: this.maxDeliveries,
        min: 1,
      });
    const member: Member = { handler, active: true, running: new Set(), tails: new Map() };
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

  private deliver(wire: InMemoryWireMessage): void {
    const byGroup = this.groups.get(wire.destination);
    if (!byGroup) return;
    for (const entry of byGroup.values()) {
      if (!entry.members.length) continue;
      const inbound = this.decode(wire);
      if (!inbound.ok) {
        const { reason, detail, messageId } = inbound.poison;
        this.deadLetter(entry, wire, undefined, { reason, detail, messageId, attempts: 0 });
        continue;
      }
      const message = inbound.message;
      // Round-robin; the member holds the message's key while it retries (as a RabbitMQ consumer
      // does): its later messages of that key wait, other members and keys flow.
      const member = entry.members[entry.next++ % entry.members.length]!;
      const key = message.key;
      const previous = key === null ? undefined : member.tails.get(key);
      const run = (async () => {
        await previous;
        await Promise.resolve(); // deliver asynchronously, never inside publish()
        await this.deliverToGroup(entry, member, wire, message);
      })();
      if (key !== null) {
        member.tails.set(key, run);
        void run.finally(() => {
          if (member.tails.get(key) === run) member.tails.delete(key);
        });
      }
    }
  }

  /** Hands `message` to the group's members until one handler resolves, or dead-letters it. */
  private async deliverToGroup(
    entry: Group,
    first: Member,
    wire: InMemoryWireMessage,
    message: BrokerMessage,
  ): Promise<void> {
    let counted = 0;
    let member: Member | undefined = first;
    for (let attempt = 1; ; attempt++) {
      // A member that unsubscribed meanwhile hands the message to another (a requeue).
      if (!member.active) member = entry.members.find((m) => m.active);
      if (!member) return; // nobody left to deliver to: dropped, as a queue nobody reads
      const current = member;
      const run = Promise.resolve().then(() =>
        // Each group decoded its own copy from the wire; a retry decodes again, so a handler that
        // changed the message it got never sees its own changes (as with a real broker).
        current.handler({
          ...(attempt === 1 ? message : redecoded(this.decode(wire), message)),
          deliveryAttempt: attempt,
        }),
      );
      current.running.add(run);
      try {
        await run;
        return;
      } catch (error) {
        if (!(error instanceof DeliveryDeferredError)) counted++;
        if (counted >= entry.maxDeliveries) {
          this.deadLetter(entry, wire, message, {
            reason: 'max-deliveries',
            detail: `the handler failed ${counted} times (maxDeliveries ${entry.maxDeliveries}); last error: ${errorText(error)}`,
            messageId: message.id,
            attempts: attempt,
          });
          return;
        }
      } finally {
        current.running.delete(run);
      }
      const base = this.options.redeliveryDelayMs ?? 5;
      await sleep(exponentialDelay(attempt, base, Math.max(base, 1000)));
    }
  }

  /** The wire form through the checks every adapter runs (inbound-message.ts). */
  private decode(wire: InMemoryWireMessage): Inbound {
    return inboundMessage({
      destination: wire.destination,
      headers: { ...wire.headers },
      transport: {},
      body: wire.body,
      maxMessageBytes: this.maxMessageBytes,
    });
  }

  private deadLetter(
    entry: Group,
    wire: InMemoryWireMessage,
    message: BrokerMessage | undefined,
    what: Pick<DeadLetteredMessage, 'reason' | 'detail' | 'messageId' | 'attempts'>,
  ): void {
    const event: DeadLetteredMessage = {
      broker: this.name,
      destination: wire.destination,
      group: entry.name,
      deadLetterDestination: deadLetterDestinationOf(wire.destination),
      ...what,
    };
    this.deadLetters.push({ ...event, message, wire });
    this.reporter.report(event);
  }
}

/** A decoded message again (it decoded once already, so it decodes the same way). */
function redecoded(inbound: Inbound, fallback: BrokerMessage): BrokerMessage {
  return inbound.ok ? inbound.message : fallback;
}
