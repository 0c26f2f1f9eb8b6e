import { createHash } from 'node:crypto';
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type PubAck,
} from '@nats-io/jetstream';
import { InvalidOptionsError } from '../../core/errors';
import { withTlsHint } from '../tls-failure-hint';
import { errorChainText, errorText } from '../../core/error-text';
import { integerOption } from '../../core/options';
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
import { silentLogger, type SageLogger } from '../../core/ports/logger';
import { exponentialDelay } from '../backoff';
import { DeadLetterReporter } from '../dead-letters';
import { DEFAULT_MAX_DELIVERIES, DEFAULT_MAX_MESSAGE_BYTES } from '../inbound-message';
import { withTimeout } from '../../core/with-timeout';
import {
  InvalidArgumentError,
  connect,
  nanos,
  type ConnectSecurity,
  type NatsConnection,
} from './nats-client';
import { NatsConsumeLoop } from './nats-consume-loop';
import { NatsMessageRejected, destinationProblem, encodeMessage } from './nats-message-codec';
import { PendingAcks } from './pending-acks';
import { natsConnectSecurity, natsServers } from './nats-security';
import type { NatsSecurityOptions } from './nats-security-options';

export interface NatsJetStreamBrokerOptions extends NatsSecurityOptions {
  /**
   * NATS server URL(s), e.g. `nats://127.0.0.1:4222`; `tls://host:4222` requires TLS. Never with
   * credentials in them: use `user`/`password`, `token`, `nkeySeed` or `credsFile`.
   */
  servers: string | string[];
  /** The JetStream stream holding every Sage subject; created (file storage) if missing. Default `SAGE`. */
  stream?: string;
  /** Prefix of every subject: destination `orders` is subject `sage.orders`. Must end with `.`. Default `sage.`. */
  subjectPrefix?: string;
  /** Publishes awaiting their PubAck at once, across all `publish` calls. Default 256. */
  maxPending?: number;
  /** JetStream duplicate window for a new stream (`Nats-Msg-Id` dedup). Default 120 000 (2 min). */
  duplicateWindowMs?: number;
  /** How long a delivered message may stay un-acked before redelivery. Default 30 000. */
  ackWaitMs?: number;
  /**
   * Attempts at a message whose handler keeps failing (in-process retries included) before it is
   * published to the dead-letter subject `${subjectPrefix}${destination}.dlq` and terminated;
   * `SubscribeOptions.maxDeliveries` overrides it per subscription; -1 = never. The JetStream
   * consumer's own `max_deliver` stays unlimited: the server would give up without a record.
   * Default 10.
   */
  maxDeliver?: number;
  /**
   * Largest body handed to a handler; a larger one is dead-lettered without being parsed. Default
   * 1 MiB. The server's own limit is `max_payload` (default 1 MiB).
   */
  maxMessageBytes?: number;
  /** How long one publish waits for its PubAck. Default 5 000. */
  publishTimeoutMs?: number;
  /**
   * Messages a subscriber pulls ahead of its handlers: the client buffers up to this many, and the
   * subscriber holds up to `concurrency` + this many taken and not yet acked (waiting for their
   * key or a slot). Default 16.
   */
  prefetch?: number;
  /**
   * Handler calls a subscriber runs at once, on different keys (`BrokerMessage.key`); messages of
   * one key are handled one at a time, in stream order, and a failing message's retries hold only
   * its key. 1 handles one message at a time (other keys still go on while one waits to retry).
   * At most the durable consumer's `max_ack_pending` (JetStream's default 1 000), which bounds
   * un-acked messages across all members of a group. Default 16. A batch of messages of
   * different keys (`SubscribeOptions.batch`, the inbox's `batchSize`) is one call.
   */
  concurrency?: number;
  /**
   * Lifetime of a subscriber's pull request (min 1 000). The client re-pulls after missing two
   * heartbeats (half this each), so this bounds the stall when a pull is lost in a server restart.
   * Default 5 000 (the client's own default, 30 000, can stall a subscriber for 30 s).
   */
  pullExpiresMs?: number;
  /**
   * Wait before a failed handler is retried (in-process, before the subscriber takes its next
   * message, so per-key order holds). Default 200 ms doubling, capped at 10 s.
   */
  redeliveryDelayMs?: (deliveryAttempt: number) => number;
  /** Timeout of the health check's JetStream round trip. Default 2 000. */
  healthTimeoutMs?: number;
  /** CloudEvents `ce-source` when the message has none. Default `sage`. */
  source?: string;
  /** `Broker.name`, shown in errors and health. Default `nats`. */
  name?: string;
  logger?: SageLogger;
}

interface Connected {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

/** Stream / consumer names: no whitespace, `.`, `*`, `>`, path separators. */
const NAME = /^[^\s.*>/\\]+$/;
/** One or more subject tokens, each followed by `.`. */
// eslint-disable-next-line security/detect-unsafe-regex -- linear: a token cannot contain ".", so each repetition ends at the next "." and no input is matched two ways.
const PREFIX = /^([^\s.*>]+\.)+$/;
const ABORTED = Symbol('aborted');
/** JetStream API error: the message is larger than the stream's max_msg_size. */
const MESSAGE_TOO_LARGE = 10054;

/**
 * The NATS JetStream Broker, on the maintained `@nats-io/*` v3 client.
 *
 * Publishing: every destination is a subject under `subjectPrefix`, captured by one file-backed
 * stream this adapter provisions. Each message is published with `Nats-Msg-Id` = the outbox id, so
 * JetStream drops a republish inside the duplicate window and answers it with a (duplicate) PubAck,
 * which is reported `ok`. Headers are CloudEvents 1.0 binary mode. Many publishes are in flight at
 * once, never more than `maxPending`; a result is `ok` only once JetStream stored the message.
 *
 * Consuming: each (group, destination) is one durable pull consumer with explicit acks; every
 * `subscribe` with that group is a member sharing its messages. With `SubscribeOptions.batch`,
 * first deliveries of different keys are handed over together, one per key (see NatsConsumeLoop).
 *
 * The connection is opened on first use and reconnects for ever; `close()` stops the subscribers
 * and drains it.
 */
export class NatsJetStreamBroker implements Broker {
  readonly name: string;
  private readonly servers: string[];
  /** TLS and authentication of the connection: secrets, never shown. */
  private readonly security: ConnectSecurity;
  private readonly stream: string;
  private readonly subjectPrefix: string;
  private readonly duplicateWindowMs: number;
  private readonly ackWaitMs: number;
  private readonly maxDeliver: number;
  private readonly maxMessageBytes: number;
  private readonly deadLetters = new DeadLetterReporter(() => this.logger);
  /** How long one publish waits for its PubAck (`publishTimeoutMs` option, default 5 s). */
  readonly publishTimeoutMs: number;
  private readonly prefetch: number;
  private readonly concurrency: number;
  private readonly pullExpiresMs: number;
  private readonly healthTimeoutMs: number;
  private readonly source: string;
  private readonly redeliveryDelayMs: (deliveryAttempt: number) => number;
  private readonly logger: SageLogger;
  private readonly pending: PendingAcks;
  private readonly loops = new Set<NatsConsumeLoop>();
  private connection: Promise<Connected> | undefined;
  private streamReady: Promise<void> | undefined;
  private connected = false;
  /** Connection losses so far: the consume loops check it for deliveries lost in transit. */
  private disconnects = 0;
  /** Why the connection is down (the failed connect, or the lost connection), for errors; cleared once connected. */
  private lastConnectionError: string | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private duplicates = 0;

  constructor(options: NatsJetStreamBrokerOptions) {
    this.name = options.name ?? 'nats';
    const servers = Array.isArray(options.servers) ? [...options.servers] : [options.servers];
    if (!servers.length || servers.some((s) => typeof s !== 'string' || !s))
      throw new InvalidOptionsError('nats.servers', 'give at least one NATS server URL');
    const checked = natsServers(servers);
    this.servers = checked.servers;
    this.security = natsConnectSecurity(options, checked.tls);
    this.stream = options.stream ?? 'SAGE';
    if (!NAME.test(this.stream))
      throw new InvalidOptionsError(
        'nats.stream',
        `"${this.stream}" is not a valid stream name (no whitespace, ".", "*", ">", "/" or "\\")`,
      );
    this.subjectPrefix = options.subjectPrefix ?? 'sage.';
    if (!PREFIX.test(this.subjectPrefix))
      throw new InvalidOptionsError(
        'nats.subjectPrefix',
        `"${this.subjectPrefix}" must be one or more subject tokens each ending with "." (e.g. "sage.")`,
      );
    this.pending = new PendingAcks(positiveInt('nats.maxPending', options.maxPending, 256));
    this.duplicateWindowMs = positiveInt(
      'nats.duplicateWindowMs',
      options.duplicateWindowMs,
      120_000,
    );
    this.ackWaitMs = positiveInt('nats.ackWaitMs', options.ackWaitMs, 30_000);
    this.maxDeliver = options.maxDeliver ?? DEFAULT_MAX_DELIVERIES;
    if (!Number.isInteger(this.maxDeliver) || (this.maxDeliver < 1 && this.maxDeliver !== -1))
      throw new InvalidOptionsError(
        'nats.maxDeliver',
        'must be a positive integer, or -1 for unlimited',
      );
    this.maxMessageBytes = positiveInt(
      'nats.maxMessageBytes',
      options.maxMessageBytes,
      DEFAULT_MAX_MESSAGE_BYTES,
    );
    this.publishTimeoutMs = positiveInt('nats.publishTimeoutMs', options.publishTimeoutMs, 5_000);
    this.prefetch = positiveInt('nats.prefetch', options.prefetch, 16);
    this.concurrency = positiveInt('nats.concurrency', options.concurrency, 16);
    this.pullExpiresMs = positiveInt('nats.pullExpiresMs', options.pullExpiresMs, 5_000);
    if (this.pullExpiresMs < 1_000)
      throw new InvalidOptionsError(
        'nats.pullExpiresMs',
        'must be at least 1000 (a JetStream minimum)',
      );
    this.healthTimeoutMs = positiveInt('nats.healthTimeoutMs', options.healthTimeoutMs, 2_000);
    this.source = options.source ?? 'sage';
    this.redeliveryDelayMs =
      options.redeliveryDelayMs ?? ((attempt) => exponentialDelay(attempt, 200, 10_000));
    this.logger = options.logger ?? silentLogger;
  }

  /** Counters for tests and metrics. */
  stats(): {
    pendingAcks: number;
    peakPendingAcks: number;
    duplicates: number;
    subscribers: number;
  } {
    return {
      pendingAcks: this.pending.current,
      peakPendingAcks: this.pending.peak,
      duplicates: this.duplicates,
      subscribers: this.loops.size,
    };
  }

  async publish(batch: readonly BrokerMessage[], signal?: AbortSignal): Promise<PublishResult[]> {
    if (this.closed) throw new BrokerPublishError(this.name, 'broker is closed', true);
    if (!batch.length) return [];
    let c: Connected;
    try {
      c = await this.connect();
    } catch (error) {
      // Cannot connect: the outage, not these messages' fault (the relay does not count it).
      throw new BrokerUnavailableError(
        this.name,
        `JetStream at ${this.servers.join(', ')} is not reachable: ${natsFailureText(error)}`,
        { cause: error },
      );
    }
    try {
      await this.ensureStream(c.jsm);
    } catch (error) {
      throw new BrokerPublishError(
        this.name,
        `JetStream at ${this.servers.join(', ')} is not reachable or stream "${this.stream}" cannot be provisioned: ${errorChainText(error)}`,
        true,
        { cause: error },
      );
    }
    if (signal?.aborted)
      throw new BrokerPublishError(this.name, 'publish aborted', true, { cause: signal.reason });
    // One abort listener per call, however large the batch.
    let onAbort: (() => void) | undefined;
    const aborted = signal
      ? new Promise<typeof ABORTED>((resolve) => {
          onAbort = () => resolve(ABORTED);
          signal.addEventListener('abort', onAbort, { once: true });
        })
      : undefined;
    try {
      return await Promise.all(batch.map((message) => this.publishOne(c, message, aborted)));
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  async subscribe(
    destination: string,
    handler: (message: DeliveredMessage) => Promise<void>,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    if (this.closed) throw new BrokerPublishError(this.name, 'broker is closed', false);
    const problem = destinationProblem(destination);
    if (problem)
      throw new InvalidOptionsError(
        'destination',
        `"${destination}" is not a valid NATS subject: ${problem}`,
      );
    const group = options.group ?? destination;
    const durable = durableName(group, destination);
    let c: Connected;
    let maxAckPending: number;
    try {
      c = await this.connect();
      await this.ensureStream(c.jsm);
      maxAckPending = await this.ensureConsumer(c.jsm, durable, this.subjectPrefix + destination);
    } catch (error) {
      // JetStream answered "no" (a consumer config it refuses): not an outage, no retry fixes it.
      if (error instanceof JetStreamApiError) throw error;
      throw new BrokerUnavailableError(
        this.name,
        `cannot subscribe to "${destination}" (group "${group}"): JetStream at ${this.servers.join(', ')} is not reachable: ${natsFailureText(error)}`,
        { cause: error },
      );
    }
    if (this.closed) throw new BrokerPublishError(this.name, 'broker is closed', false);
    if (maxAckPending > 0 && this.concurrency > maxAckPending)
      throw new InvalidOptionsError(
        'nats.concurrency',
        `${this.concurrency} is more than max_ack_pending (${maxAckPending}) of the JetStream consumer "${durable}" (group "${group}"), which never lets that many messages be un-acked at once: lower nats.concurrency to ${maxAckPending} or less, or raise the consumer's max_ack_pending`,
      );
    const maxDeliver =
      options.maxDeliveries === undefined
        ? this.maxDeliver
        : positiveInt('subscribe.maxDeliveries', options.maxDeliveries, this.maxDeliver);
    const loop = new NatsConsumeLoop({
      js: c.js,
      brokerName: this.name,
      stream: this.stream,
      destination,
      group,
      durable,
      subjectPrefix: this.subjectPrefix,
      prefetch: this.prefetch,
      concurrency: this.concurrency,
      pullExpiresMs: this.pullExpiresMs,
      ackWaitMs: this.ackWaitMs,
      maxDeliver,
      maxMessageBytes: this.maxMessageBytes,
      publishTimeoutMs: this.publishTimeoutMs,
      redeliveryDelayMs: this.redeliveryDelayMs,
      handler,
      batch: options.batch && {
        maxSize: integerOption('subscribe.batch.maxSize', options.batch.maxSize, {
          fallback: 1,
          min: 1,
          max: 1000,
        }),
        handle: (messages) => options.batch!.handle(messages),
      },
      deadLetters: this.deadLetters,
      logger: this.logger,
      disconnects: () => this.disconnects,
    });
    this.loops.add(loop);
    loop.start();
    return {
      unsubscribe: async () => {
        await loop.stop();
        this.loops.delete(loop);
      },
    };
  }

  onDeadLetter(listener: (event: DeadLetteredMessage) => void): () => void {
    return this.deadLetters.listen(listener);
  }

  async health(): Promise<BrokerHealth> {
    if (this.closed) return { up: false, detail: 'closed' };
    try {
      return await withTimeout(
        this.accountHealth(),
        this.healthTimeoutMs,
        () => new Error(`no JetStream answer within ${this.healthTimeoutMs} ms`),
      );
    } catch (error) {
      return { up: false, detail: errorText(error) };
    }
  }

  /** Connects if need be and asks JetStream for the account; down names the servers and the cause. */
  async probe(timeoutMs: number): Promise<BrokerHealth> {
    if (this.closed) return { up: false, detail: 'closed' };
    try {
      const health = await withTimeout(
        this.accountHealth(),
        timeoutMs,
        () => new Error(`no JetStream answer within ${timeoutMs} ms`),
      );
      if (health.up) return health;
      return {
        up: false,
        detail: `cannot reach NATS at ${this.servers.join(', ')}: ${health.detail}`,
      };
    } catch (error) {
      return {
        up: false,
        detail: `cannot reach NATS at ${this.servers.join(', ')}: ${natsFailureText(error)}`,
      };
    }
  }

  /** Connects if needed and asks JetStream for the account: up only when the server answers. */
  private async accountHealth(): Promise<BrokerHealth> {
    const c = await this.connect();
    if (!this.connected)
      return { up: false, detail: `disconnected, reconnecting to ${this.servers.join(', ')}` };
    const account = await c.jsm.getAccountInfo();
    return {
      up: true,
      detail: `${c.nc.getServer()}: JetStream ${account.streams} streams, ${account.consumers} consumers; stream "${this.stream}"; ${this.pending.current} publishes awaiting ack`,
    };
  }

  close(): Promise<void> {
    this.closed = true;
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    await Promise.allSettled([...this.loops].map((loop) => loop.stop()));
    this.loops.clear();
    const connection = this.connection;
    if (!connection) return;
    const c = await connection.catch(() => undefined);
    if (!c || c.nc.isClosed()) return;
    try {
      await c.nc.drain();
    } catch (error) {
      this.logger.warn('NATS drain failed; closing the connection', { error: errorText(error) });
      await c.nc.close();
    }
  }

  private async publishOne(
    c: Connected,
    message: BrokerMessage,
    aborted: Promise<typeof ABORTED> | undefined,
  ): Promise<PublishResult> {
    let encoded: ReturnType<typeof encodeMessage>;
    try {
      encoded = encodeMessage(message, this.subjectPrefix, this.source);
    } catch (error) {
      return {
        id: message.id,
        ok: false,
        error: errorText(error),
        retryable: !(error instanceof NatsMessageRejected),
      };
    }
    const slot = this.pending.acquire();
    if (aborted && (await Promise.race([slot, aborted])) === ABORTED) {
      void slot.then(() => this.pending.release()); // the slot comes later; hand it straight on
      return {
        id: message.id,
        ok: false,
        error: 'publish aborted before it was sent',
        retryable: true,
      };
    }
    await slot;
    const attempt = c.js
      .publish(encoded.subject, encoded.data, {
        msgID: message.id,
        headers: encoded.headers,
        timeout: this.publishTimeoutMs,
      })
      .then(
        (ack: PubAck): PublishResult => {
          if (ack.duplicate) this.duplicates++;
          return { id: message.id, ok: true };
        },
        (error: unknown): PublishResult => this.publishFailure(message, error),
      )
      .finally(() => this.pending.release());
    if (!aborted) return attempt;
    const outcome = await Promise.race([attempt, aborted]);
    if (outcome !== ABORTED) return outcome;
    return {
      id: message.id,
      ok: false,
      error:
        'publish aborted while awaiting the JetStream ack; its fate is unknown (a republish is deduplicated by Nats-Msg-Id)',
      retryable: true,
    };
  }

  private publishFailure(message: BrokerMessage, error: unknown): PublishResult {
    const text = errorText(error);
    // Too large for the server or the stream: no retry will change that.
    if (error instanceof InvalidArgumentError && /max_payload/.test(error.message))
      return {
        id: message.id,
        ok: false,
        error: `${text} (message too large for the NATS server)`,
        retryable: false,
      };
    if (error instanceof JetStreamApiError && error.code === MESSAGE_TOO_LARGE)
      return { id: message.id, ok: false, error: text, retryable: false };
    // No responders: JetStream is restarting or the stream was deleted; re-provision next time.
    if (error instanceof Error && /jetstream is not enabled|no responders/i.test(error.message))
      this.streamReady = undefined;
    // A timeout while disconnected is the outage, not a slow server: say so, with its cause.
    const down = this.connected
      ? ''
      : `not connected to NATS at ${this.servers.join(', ')} (${this.lastConnectionError ?? 'reconnecting'}); `;
    return {
      id: message.id,
      ok: false,
      error: down + text,
      retryable: true,
      // Not connected: the outage, not this message's fault (the relay does not count it).
      ...(down ? { unavailable: true } : {}),
    };
  }

  private connect(): Promise<Connected> {
    this.connection ??= this.open().catch((error: unknown) => {
      this.connection = undefined;
      this.lastConnectionError = `connect failed: ${natsFailureText(error)}`;
      throw error;
    });
    return this.connection;
  }

  private async open(): Promise<Connected> {
    const nc = await connect({
      servers: this.servers,
      ...this.security,
      name: `sage-${this.name}`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    this.connected = true;
    this.lastConnectionError = undefined;
    void this.watchConnection(nc);
    try {
      if (this.closed) throw new BrokerPublishError(this.name, 'broker is closed', true);
      const jsm = await jetstreamManager(nc, { timeout: this.publishTimeoutMs });
      return { nc, js: jsm.jetstream(), jsm };
    } catch (error) {
      await nc.close();
      throw error;
    }
  }

  private async watchConnection(nc: NatsConnection): Promise<void> {
    try {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') {
          this.connected = false;
          this.disconnects++;
          this.lastConnectionError = `connection to ${s.server} lost, reconnecting`;
          this.logger.warn('NATS connection lost; reconnecting', { server: s.server });
        } else if (s.type === 'error') {
          this.lastConnectionError = natsFailureText(s.error);
        } else if (s.type === 'reconnect') {
          this.connected = true;
          this.lastConnectionError = undefined;
          this.logger.info('NATS connection restored', { server: s.server });
        }
      }
    } catch (error) {
      this.logger.debug('NATS status stream ended', { error: errorText(error) });
    }
    this.connected = false;
  }

  private ensureStream(jsm: JetStreamManager): Promise<void> {
    this.streamReady ??= this.provisionStream(jsm).catch((error: unknown) => {
      this.streamReady = undefined;
      throw error;
    });
    return this.streamReady;
  }

  /** Creates the stream, or adds our subject to an existing one. Idempotent; races with other processes. */
  private async provisionStream(jsm: JetStreamManager): Promise<void> {
    const subject = `${this.subjectPrefix}>`;
    const existing = await this.streamSubjects(jsm);
    if (existing) {
      if (!existing.includes(subject))
        await jsm.streams.update(this.stream, { subjects: [...existing, subject] });
      return;
    }
    try {
      await jsm.streams.add({
        name: this.stream,
        subjects: [subject],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        duplicate_window: nanos(this.duplicateWindowMs),
      });
      this.logger.info('NATS stream created', { stream: this.stream, subject });
    } catch (error) {
      // Another process created it first: fine if it now captures our subject.
      const now = await this.streamSubjects(jsm);
      if (!now?.includes(subject)) throw error;
    }
  }

  private async streamSubjects(jsm: JetStreamManager): Promise<string[] | undefined> {
    try {
      return (await jsm.streams.info(this.stream)).config.subjects ?? [];
    } catch (error) {
      if (error instanceof JetStreamApiError && error.code === 10059) return undefined;
      throw error;
    }
  }

  /**
   * Creates the durable consumer, or updates the settings that may change on an existing one;
   * returns its `max_ack_pending` (-1 or 0: no limit).
   */
  private async ensureConsumer(
    jsm: JetStreamManager,
    durable: string,
    filterSubject: string,
  ): Promise<number> {
    // max_deliver unlimited: the consume loop counts attempts and dead-letters with a record;
    // JetStream giving up on its own would leave the message nowhere inspectable.
    const settings = {
      ack_wait: nanos(this.ackWaitMs),
      max_deliver: -1,
    };
    try {
      const info = await jsm.consumers.info(this.stream, durable);
      if (
        info.config.ack_wait !== settings.ack_wait ||
        info.config.max_deliver !== settings.max_deliver
      )
        await jsm.consumers.update(this.stream, durable, settings);
      return info.config.max_ack_pending ?? -1;
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === 10014)) throw error;
    }
    const created = await jsm.consumers.add(this.stream, {
      durable_name: durable,
      filter_subject: filterSubject,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ...settings,
    });
    return created.config.max_ack_pending ?? -1;
  }
}

/**
 * The durable consumer for (group, destination). A group name alone would collide when one group
 * subscribes to two destinations (consumers live per stream); the hash keeps names distinct and
 * within limits while the readable part helps operators.
 */
export function durableName(group: string, destination: string): string {
  const readable = group.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 48);
  const hash = createHash('sha256').update(`${group}\n${destination}`).digest('hex').slice(0, 12);
  return `${readable}_${hash}`;
}

function positiveInt(option: string, value: number | undefined, fallback: number): number {
  return integerOption(option, value, { fallback, min: 1 });
}

/** The options a TLS failure hint names for NATS (see withTlsHint). */
const NATS_TLS_NAMES = {
  ca: 'nats.tls.ca (or caFile; SAGE_NATS_TLS_CA for sage-relay)',
  cert: 'nats.tls.cert and nats.tls.key (SAGE_NATS_TLS_CERT / _KEY for sage-relay)',
  enable: 'nats.tls',
};

/** A connection failure's text (its cause chain), with the option to set when it is a TLS one. */
function natsFailureText(error: unknown): string {
  return withTlsHint(errorChainText(error), NATS_TLS_NAMES);
}
