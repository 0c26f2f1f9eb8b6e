import { BrokerPublishError } from '../../core/outbox/outbox-errors';

interface Connectable {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
}

/**
 * One kafkajs client (a producer or the admin), created and connected on first use and shared
 * until its connect fails or it is discarded; the next use then starts a fresh one.
 */
export class KafkaLazyClient<C extends Connectable> {
  private client: C | undefined;
  private ready: Promise<C> | undefined;

  constructor(
    private readonly brokerName: string,
    private readonly create: () => C,
    private readonly isClosed: () => boolean,
    /** What a failed connect rejects with. Default: the kafkajs error. */
    private readonly connectError: (error: unknown) => unknown = (error) => error,
  ) {}

  connected(): Promise<C> {
    if (!this.ready) {
      const client = (this.client = this.create());
      this.ready = client.connect().then(
        () => this.unlessClosed(client),
        (error: unknown) => {
          this.forget(client);
          throw this.connectError(error);
        },
      );
    }
    return this.ready;
  }

  /** Drops `client` if it is the current one (the next use connects a new one); whether it was. */
  forget(client: C): boolean {
    if (this.client !== client) return false;
    this.client = undefined;
    this.ready = undefined;
    return true;
  }

  /** Disconnects the instance, not its connect promise: a connect still retrying must not hold close() up. */
  disconnect(): Promise<void> | undefined {
    return this.client?.disconnect();
  }

  /**
   * A client whose connect finished after close() (which disconnected it mid-connect) would keep
   * its socket, and the process, alive: disconnect it again and fail the caller.
   */
  private unlessClosed(client: C): C {
    if (!this.isClosed()) return client;
    void client.disconnect().catch(() => undefined);
    throw new BrokerPublishError(this.brokerName, 'broker is closed', false);
  }
}
