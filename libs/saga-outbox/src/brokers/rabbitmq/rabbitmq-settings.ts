import { InvalidOptionsError } from '../../core/errors';
import { integerOption } from '../../core/options';
import { silentLogger, type SageLogger } from '../../core/ports/logger';
import { urlAddress } from '../../core/startup/connection-url';
import { DEFAULT_MAX_DELIVERIES, DEFAULT_MAX_MESSAGE_BYTES } from '../inbound-message';
import type { RabbitMqBrokerOptions } from './rabbitmq-options';

/** RabbitMqBrokerOptions checked, with every default applied: what the publisher and consumers run on. */
export interface RabbitMqSettings {
  name: string;
  /** `host:port` of each URL, for messages (never the credentials). */
  address: string;
  exchange: string;
  dlx: string;
  queueType: 'quorum' | 'classic';
  /** The queue a subscription with this destination and group consumes from. */
  queueName: (destination: string, group?: string) => string;
  prefetch: number;
  maxDeliveries: number;
  maxMessageBytes: number;
  redeliveryDelayMs: number;
  maxRedeliveryDelayMs: number;
  publishTimeoutMs: number;
  /** Infinity: no limit. */
  publishWindow: number;
  operationTimeoutMs: number;
  unroutableRetryable: boolean;
  declareDestinations: { destination: string; group?: string }[];
  source: string;
  logger: SageLogger;
}

/** Throws InvalidOptionsError for a bad URL, count, timeout or queue type, before anything connects. */
export function rabbitMqSettings(options: RabbitMqBrokerOptions): RabbitMqSettings {
  const urls = Array.isArray(options.url) ? options.url : [options.url];
  if (!urls.length || urls.some((u) => typeof u !== 'string' || !/^amqps?:\/\//.test(u)))
    throw new InvalidOptionsError('url', 'must be one or more amqp:// or amqps:// URLs');
  const int = (name: keyof RabbitMqBrokerOptions, fallback: number, min: number): number =>
    integerOption(name, options[name] as number | undefined, { fallback, min });
  const prefetch = int('prefetch', 32, 1);
  const maxDeliveries = int('maxDeliveries', DEFAULT_MAX_DELIVERIES, 1);
  const maxMessageBytes = int('maxMessageBytes', DEFAULT_MAX_MESSAGE_BYTES, 1);
  const publishTimeoutMs = int('publishTimeoutMs', 10_000, 1);
  const publishWindow = options.publishWindow === undefined ? Infinity : int('publishWindow', 1, 1);
  const operationTimeoutMs = int('operationTimeoutMs', 5000, 1);
  const redeliveryDelayMs = int('redeliveryDelayMs', 200, 0);
  const maxRedeliveryDelayMs = int('maxRedeliveryDelayMs', 5000, 0);
  if (options.queueType && !['quorum', 'classic'].includes(options.queueType))
    throw new InvalidOptionsError('queueType', `must be "quorum" or "classic"`);
  const exchange = options.exchange ?? 'sage';
  return {
    name: options.name ?? 'rabbitmq',
    address: urls
      .map((u) => urlAddress(u, u.startsWith('amqps:') ? 5671 : 5672) ?? 'an unparseable URL')
      .join(', '),
    exchange,
    dlx: options.deadLetterExchange ?? `${exchange}.dlx`,
    queueType: options.queueType ?? 'quorum',
    queueName: (destination, group) =>
      options.queueName
        ? options.queueName(destination, group)
        : group
          ? `${group}.${destination}`
          : destination,
    prefetch,
    maxDeliveries,
    maxMessageBytes,
    redeliveryDelayMs,
    maxRedeliveryDelayMs,
    publishTimeoutMs,
    publishWindow,
    operationTimeoutMs,
    unroutableRetryable: options.unroutableRetryable ?? true,
    declareDestinations: (options.declareDestinations ?? []).map((entry) =>
      typeof entry === 'string' ? { destination: entry } : entry,
    ),
    source: options.source ?? 'sage',
    logger: options.logger ?? silentLogger,
  };
}
