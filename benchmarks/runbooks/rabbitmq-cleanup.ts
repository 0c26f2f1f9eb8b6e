/** Deletes the queues and exchanges a drill scenario declared on the shared RabbitMQ. */
import { connect } from 'amqplib';

export async function deleteRabbitMqObjects(
  url: string,
  objects: { queues: string[]; exchanges: string[] },
): Promise<void> {
  const connection = await connect(url);
  try {
    for (const queue of objects.queues) {
      const channel = await connection.createChannel(); // a failed delete closes its channel
      await channel.deleteQueue(queue).catch(() => undefined);
    }
    for (const exchange of objects.exchanges) {
      const channel = await connection.createChannel();
      await channel.deleteExchange(exchange).catch(() => undefined);
    }
  } finally {
    await connection.close().catch(() => undefined);
  }
}
