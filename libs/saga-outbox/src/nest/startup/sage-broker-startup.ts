import { Inject, Injectable, Optional, type OnModuleInit } from '@nestjs/common';
import type { Broker } from '../../core/ports/broker';
import { BrokerStartup, type StartingSubscriptions } from '../../core/startup/broker-startup';
import { NestSageLogger } from '../nest-sage-logger';
import { OUTBOX_BROKER } from '../outbox/outbox.options';
import { SAGA_OUTBOX_OPTIONS } from '../saga-outbox.module-definition';
import type { SagaOutboxModuleOptions } from '../saga-outbox.options';
import { SageDatabase } from '../sage-database';

/**
 * The module's `brokerStartup` policy (see BrokerStartup): probes the configured broker at module
 * init, before any loop or subscription starts on application bootstrap. `'wait'` fails startup
 * there with BrokerUnavailableError once `retryAttempts` × `retryDelay` are spent (closing what
 * Sage opened, so the failed process can exit); `'degraded'` logs one WARN and lets the app start.
 * The inbox subscribers (`@IdempotentHandler`, `@SagaCommandHandler`, saga replies) subscribe
 * through `start()`.
 */
@Injectable()
export class SageBrokerStartup implements OnModuleInit {
  readonly startup: BrokerStartup | undefined;

  constructor(
    @Inject(SAGA_OUTBOX_OPTIONS) private readonly options: SagaOutboxModuleOptions,
    private readonly database: SageDatabase,
    @Optional() @Inject(OUTBOX_BROKER) private readonly broker?: Broker | null,
  ) {
    if (broker)
      this.startup = new BrokerStartup({
        broker,
        mode: options.brokerStartup ?? 'degraded',
        retries: options.retryAttempts ?? 9,
        delayMs: options.retryDelay ?? 3000,
        logger: new NestSageLogger('Sage'),
      });
  }

  async onModuleInit(): Promise<void> {
    if (!this.startup) return;
    try {
      await this.startup.check();
    } catch (error) {
      // Nest runs no shutdown hook after a failed init: a broker connection retrying for ever and
      // Sage's pool would keep the process alive. A broker instance passed in is the caller's.
      if (typeof this.options.broker !== 'object')
        await this.broker?.close().catch(() => undefined);
      await this.database.close().catch(() => undefined);
      throw error;
    }
  }

  /**
   * Subscribes `what` with `subscribe` per the policy (BrokerStartup.start): now, or in the
   * background until the broker is reachable. Without a broker startup, now.
   */
  async start(what: string, subscribe: () => Promise<void>): Promise<StartingSubscriptions> {
    if (this.startup) return this.startup.start(what, subscribe);
    await subscribe();
    return { subscribed: true, stop: () => Promise.resolve() };
  }
}
