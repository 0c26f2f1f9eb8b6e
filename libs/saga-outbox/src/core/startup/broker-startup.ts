import { errorText } from '../error-text';
import { BrokerUnavailableError } from '../outbox/outbox-errors';
import type { Broker, BrokerHealth } from '../ports/broker';
import { systemClock, type Clock } from '../ports/clock';
import type { SageLogger } from '../ports/logger';
import { withTimeout } from '../with-timeout';
import { retryAtStartup } from './startup-retry';

/**
 * What startup does when the broker cannot be reached:
 * - `degraded`: start anyway, with one WARN; the outbox keeps messages until the broker is back,
 *   the relay retries, subscriptions are set up in the background once it is reachable;
 * - `wait`: retry, then fail startup with BrokerUnavailableError.
 */
export type BrokerStartupMode = 'degraded' | 'wait';

export interface BrokerStartupOptions {
  broker: Broker;
  mode: BrokerStartupMode;
  /** `wait`: attempts after the first probe fails (the module's `retryAttempts`). */
  retries: number;
  /** `wait`: ms between probes; `degraded`: the first wait between background subscription attempts. */
  delayMs: number;
  /** Bound of one probe. Default 5000. */
  probeTimeoutMs?: number;
  /** Longest wait between background subscription attempts. Default 30000 (`delayMs` if longer). */
  maxDelayMs?: number;
  /** While background attempts keep failing, a WARN at most this often (debug between). Default 60000. */
  warnIntervalMs?: number;
  logger: SageLogger;
  clock?: Clock;
}

/** Subscriptions handed to BrokerStartup.start: made now, or being retried in the background. */
export interface StartingSubscriptions {
  /** True once `subscribe` succeeded. */
  readonly subscribed: boolean;
  /** Ends background retries; resolves once no attempt is running (a late success stays subscribed). */
  stop(): Promise<void>;
}

const SUBSCRIBED: StartingSubscriptions = { subscribed: true, stop: () => Promise.resolve() };

/** Shortest wait between background attempts, whatever `retryDelay` says (0 would spin). */
const MIN_BACKGROUND_DELAY_MS = 100;

/**
 * The broker startup policy (see BrokerStartupMode), decided once here: `check()` probes the broker
 * once per process (memoised), `start()` sets up subscriptions according to what it found.
 */
export class BrokerStartup {
  private checked: Promise<BrokerHealth> | undefined;
  private readonly probeTimeoutMs: number;

  constructor(private readonly options: BrokerStartupOptions) {
    this.probeTimeoutMs = options.probeTimeoutMs ?? 5000;
  }

  get broker(): Broker {
    return this.options.broker;
  }

  /**
   * Probes the broker. Up: resolves. Down, `degraded`: logs one WARN naming the broker, the cause
   * and what happens meanwhile, and resolves (down). Down, `wait`: probes again `retries` times,
   * `delayMs` apart (a WARN each), then rejects with BrokerUnavailableError.
   */
  check(): Promise<BrokerHealth> {
    return (this.checked ??= this.runCheck());
  }

  /**
   * Sets up `what` (a set of subscriptions, all or none) with `subscribe`: at once when the broker
   * is up (or, in `wait` mode, after check() confirmed it); in `degraded` mode, when the broker
   * is down or the attempt fails with BrokerUnavailableError, in the background until it succeeds
   * (backing off, a WARN with the cause at most every `warnIntervalMs`). Any other failure (a
   * topology mismatch, an invalid destination) is thrown: it fails startup.
   * `probe: false` skips the probe and tries `subscribe` at once (the broker was probed elsewhere,
   * and its WARN logged there).
   */
  async start(
    what: string,
    subscribe: () => Promise<void>,
    options: { probe?: boolean } = {},
  ): Promise<StartingSubscriptions> {
    const { mode, logger } = this.options;
    const health: BrokerHealth = options.probe === false ? { up: true } : await this.check();
    if (health.up || mode === 'wait') {
      try {
        await subscribe();
        return SUBSCRIBED;
      } catch (error) {
        if (mode === 'wait' || !(error instanceof BrokerUnavailableError)) throw error;
        logger.warn(
          `${what}: cannot subscribe yet: ${errorText(error)}; retrying in the background (brokerStartup: 'degraded')`,
          { event: 'sage.broker.subscribe_deferred', broker: this.broker.name },
        );
      }
    }
    // The startup WARN (or the one above) already said why: the background logs again only later.
    return new BackgroundSubscriptions(what, subscribe, this.options);
  }

  private async runCheck(): Promise<BrokerHealth> {
    const { mode, logger, retries, delayMs } = this.options;
    const name = this.broker.name;
    const first = await this.probe();
    if (first.up) return first;
    if (mode === 'degraded') {
      logger.warn(
        `Broker "${name}" is unreachable at startup: ${first.detail ?? 'down'}. Starting without it ` +
          "(brokerStartup: 'degraded'): the outbox keeps every message until the broker is back, and the relay " +
          "and the subscriptions retry meanwhile; set brokerStartup: 'wait' to fail startup instead.",
        { event: 'sage.broker.unreachable_at_startup', broker: name },
      );
      return first;
    }
    return retryAtStartup(
      async (attempt) => {
        const health = attempt === 1 ? first : await this.probe();
        if (!health.up) throw new BrokerDown(health.detail ?? 'down');
        return health;
      },
      {
        retries,
        delayMs,
        onRetry: ({ error, attempt, attempts }) =>
          logger.warn(
            `Broker "${name}" is unreachable: ${errorText(error)}; attempt ${attempt}/${attempts}, retrying in ${delayMs} ms (brokerStartup: 'wait')`,
            { event: 'sage.broker.startup_retry', broker: name, attempt, attempts },
          ),
        giveUp: ({ error, attempt }) =>
          new BrokerUnavailableError(
            name,
            `not reachable at startup after ${attempt} attempt(s), ${delayMs} ms apart: ${errorText(error)}. ` +
              "Start the broker or fix the `broker` option (retryAttempts / retryDelay set how long startup waits); brokerStartup: 'degraded' starts the app without it, the outbox keeping messages until it is back.",
            { cause: error },
          ),
      },
    );
  }

  private async probe(): Promise<BrokerHealth> {
    const { broker } = this.options;
    const timeoutMs = this.probeTimeoutMs;
    try {
      return await withTimeout(
        broker.probe ? broker.probe(timeoutMs) : broker.health(),
        // The adapter bounds its own probe; this only catches one that does not.
        timeoutMs + 1000,
        () => new Error(`no answer within ${timeoutMs} ms`),
      );
    } catch (error) {
      return { up: false, detail: errorText(error) };
    }
  }
}

/** The probe said down (its detail is the message). */
class BrokerDown extends Error {}

/** Subscriptions retried in the background until they succeed or stop() is called. */
class BackgroundSubscriptions implements StartingSubscriptions {
  subscribed = false;
  private readonly abort = new AbortController();
  private readonly running: Promise<void>;

  constructor(
    private readonly what: string,
    private readonly subscribe: () => Promise<void>,
    private readonly options: BrokerStartupOptions,
  ) {
    this.running = this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private async run(): Promise<void> {
    const { logger, broker } = this.options;
    const clock = this.options.clock ?? systemClock;
    const signal = this.abort.signal;
    const firstMs = Math.max(this.options.delayMs, MIN_BACKGROUND_DELAY_MS);
    const maxMs = Math.max(this.options.maxDelayMs ?? 30_000, firstMs);
    const warnIntervalMs = this.options.warnIntervalMs ?? 60_000;
    let lastWarnAt = clock.now();
    for (let failures = 0; !signal.aborted;) {
      try {
        await clock.sleep(Math.min(firstMs * 2 ** Math.min(failures, 20), maxMs), signal);
      } catch {
        return; // stopped
      }
      try {
        await this.subscribe();
        this.subscribed = true;
        logger.info(
          `${this.what}: subscribed to broker "${broker.name}" (after ${failures + 1} attempt(s) in the background)`,
          { event: 'sage.broker.subscribed_late', broker: broker.name, attempts: failures + 1 },
        );
        return;
      } catch (error) {
        if (signal.aborted) return;
        failures++;
        const fields = {
          event: 'sage.broker.subscribe_retry',
          broker: broker.name,
          attempts: failures,
          error: errorText(error),
        };
        const now = clock.now();
        if (now - lastWarnAt < warnIntervalMs) {
          logger.debug(`${this.what}: still cannot subscribe`, fields);
          continue;
        }
        lastWarnAt = now;
        // Unreachable is what degraded mode expects; anything else (a topology mismatch) is an error.
        const text = `${this.what}: still cannot subscribe to broker "${broker.name}" after ${failures} attempt(s): ${errorText(error)}; retrying (the outbox keeps messages meanwhile)`;
        if (error instanceof BrokerUnavailableError) logger.warn(text, fields);
        else logger.error(text, fields);
      }
    }
  }
}
