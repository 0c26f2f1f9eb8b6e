import type { Channel } from 'amqplib';
import type { RabbitMqSettings } from './rabbitmq-settings';

/**
 * RabbitMQ topology: one durable topic exchange, destination = routing key; each (destination,
 * group) a durable queue bound with routing key = destination, dead-lettering to a direct DLX
 * which routes to `${queue}.dlq`. Every declaration is idempotent.
 */

export async function assertExchanges(channel: Channel, settings: RabbitMqSettings): Promise<void> {
  await channel.assertExchange(settings.exchange, 'topic', { durable: true });
  await channel.assertExchange(settings.dlx, 'direct', { durable: true });
}

/** Queue bound to the exchange, dead-lettering to `${queue}.dlq` through the DLX. */
export async function assertQueueTopology(
  channel: Channel,
  settings: RabbitMqSettings,
  destination: string,
  queue: string,
): Promise<void> {
  const dlq = `${queue}.dlq`;
  const { queueType, dlx } = settings;
  await assertExchanges(channel, settings);
  await channel.assertQueue(dlq, { durable: true, arguments: { 'x-queue-type': queueType } });
  await channel.bindQueue(dlq, dlx, queue);
  await channel.assertQueue(queue, {
    durable: true,
    arguments: {
      'x-queue-type': queueType,
      'x-dead-letter-exchange': dlx,
      'x-dead-letter-routing-key': queue,
    },
  });
  await channel.bindQueue(queue, settings.exchange, destination);
}
