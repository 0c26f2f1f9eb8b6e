/**
 * What a consumer of one destination received on RabbitMQ: a queue the drill binds to the
 * relay's exchange, recording every delivery's message id, key and payload in arrival order.
 */
import { connect, type ChannelModel } from 'amqplib';

/** The drill's payloads carry their ordering key and their place in it. */
export interface Delivery {
  id: string;
  payload: { key?: string; seq?: number };
}

export class DeliveryRecorder {
  readonly deliveries: Delivery[] = [];
  private connection: ChannelModel | undefined;

  constructor(
    private readonly url: string,
    readonly exchange: string,
    readonly destination: string,
  ) {}

  get queue(): string {
    return `${this.exchange}.${this.destination}.drill`;
  }

  async start(): Promise<void> {
    this.connection = await connect(this.url);
    const channel = await this.connection.createChannel();
    await channel.assertExchange(this.exchange, 'topic', { durable: true });
    await channel.assertQueue(this.queue, { durable: false, autoDelete: true });
    await channel.bindQueue(this.queue, this.exchange, this.destination);
    await channel.consume(
      this.queue,
      (msg) => {
        if (!msg) return;
        this.deliveries.push({
          id: String(msg.properties.messageId),
          payload: JSON.parse(msg.content.toString()) as Delivery['payload'],
        });
      },
      { noAck: true },
    );
  }

  /** How often each id arrived. */
  counts(): Map<string, number> {
    const n = new Map<string, number>();
    for (const d of this.deliveries) n.set(d.id, (n.get(d.id) ?? 0) + 1);
    return n;
  }

  async close(): Promise<void> {
    if (!this.connection) return;
    const channel = await this.connection.createChannel();
    await channel.deleteQueue(this.queue).catch(() => undefined);
    await channel.deleteExchange(this.exchange).catch(() => undefined);
    await this.connection.close().catch(() => undefined);
  }
}
