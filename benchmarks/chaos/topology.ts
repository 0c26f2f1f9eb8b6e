/**
 * Per broker, how the chaos run's relays publish and service B consumes: the `SAGE_BROKER_URL`
 * the standalone relays get, and the adapter (from the package's broker entry point) service B's
 * `@IdempotentHandler`s consume through, with the same exchange / stream / subject prefix.
 */
import type { Broker } from '@sage/saga-outbox';

export type ChaosBroker = 'kafka' | 'rabbitmq' | 'nats';
export const CHAOS_BROKERS: readonly ChaosBroker[] = ['kafka', 'rabbitmq', 'nats'];

const RABBIT_EXCHANGE = 'chaos';
const NATS_STREAM = 'CHAOS';
const NATS_PREFIX = 'chaos.';

/** `address`: Kafka `host:port`, RabbitMQ `amqp://user:pass@host:port`, NATS `nats://host:port`. */
export function relayBrokerUrl(kind: ChaosBroker, address: string, clientId: string): string {
  switch (kind) {
    case 'kafka':
      return `kafka://${address}?clientId=${encodeURIComponent(clientId)}`;
    case 'rabbitmq':
      return `${address}?exchange=${RABBIT_EXCHANGE}`;
    case 'nats':
      return `${address}?stream=${NATS_STREAM}&prefix=${NATS_PREFIX}`;
  }
}

export interface ConsumerSettings {
  clientId: string;
  /** RabbitMQ: attempts (in-process retries included) before the broker's DLQ. */
  maxDeliveries: number;
}

/** Service B's adapter, loaded from its own entry point (only the client in use is loaded). */
export async function consumerBroker(
  kind: ChaosBroker,
  address: string,
  settings: ConsumerSettings,
): Promise<Broker> {
  switch (kind) {
    case 'kafka': {
      const { KafkaBroker } = await import('@sage/saga-outbox/kafka');
      return new KafkaBroker({
        brokers: [address],
        clientId: settings.clientId,
        consumer: { partitionsConsumedConcurrently: 4 },
      });
    }
    case 'rabbitmq': {
      const { RabbitMqBroker } = await import('@sage/saga-outbox/rabbitmq');
      return new RabbitMqBroker({
        url: address,
        exchange: RABBIT_EXCHANGE,
        maxDeliveries: settings.maxDeliveries,
      });
    }
    case 'nats': {
      const { NatsJetStreamBroker } = await import('@sage/saga-outbox/nats');
      return new NatsJetStreamBroker({
        servers: address,
        stream: NATS_STREAM,
        subjectPrefix: NATS_PREFIX,
      });
    }
  }
}
