import { CompressionCodecs, CompressionTypes } from 'kafkajs';
import { InvalidOptionsError } from '../../core/errors';
import { choiceOption, integerOption } from '../../core/options';

/** Record-batch compression of the Kafka producer. */
export type KafkaCompression = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';

/**
 * Producer tuning (`KafkaBrokerOptions.producer`): what trades a little latency or CPU for fewer,
 * larger produce requests. The defaults send each publish at once, uncompressed, as one request
 * per topic. docs/benchmarks.md (broker tuning) shows what each does to relay throughput here.
 */
export interface KafkaPublishOptions {
  /**
   * Compression of each record batch. `gzip` is built into kafkajs; `snappy`, `lz4` and `zstd`
   * need a codec registered with kafkajs before the broker is constructed (for example
   * `CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec` from `kafkajs-snappy`), else the
   * constructor throws. Consumers decompress whatever the batch says. Default `none`.
   */
  compression?: KafkaCompression;
  /**
   * How long a publish waits for further publishes to join its produce request (Kafka's
   * `linger.ms`). Several relays or the optimistic sender publishing small batches at once then
   * share requests; a relay alone already hands over whole batches. 0 sends at once. Default 0.
   */
  lingerMs?: number;
  /**
   * Most messages per produce request and topic (the client-side counterpart of Kafka's
   * `batch.size`, in messages): a larger publish goes out as several requests, one after another,
   * so per-key order holds; a linger window is sent as soon as it holds this many. Default: no
   * limit (one request per topic per publish or linger window).
   */
  batchSize?: number;
}

/** KafkaPublishOptions checked, with defaults applied. */
export interface KafkaPublishSettings {
  compression: CompressionTypes;
  lingerMs: number;
  /** Infinity: no limit. */
  batchSize: number;
}

const COMPRESSION: Record<KafkaCompression, CompressionTypes> = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
};

/** Member names of kafkajs's CompressionTypes (a runtime object without reverse mapping). */
const CODEC_NAMES: Record<KafkaCompression, string> = {
  none: 'None',
  gzip: 'GZIP',
  snappy: 'Snappy',
  lz4: 'LZ4',
  zstd: 'ZSTD',
};

/** Throws InvalidOptionsError naming the option, before anything connects. */
export function kafkaPublishSettings(options: KafkaPublishOptions = {}): KafkaPublishSettings {
  const name = choiceOption(
    'kafka.producer.compression',
    options.compression,
    Object.keys(COMPRESSION) as KafkaCompression[],
    'none',
  );
  const compression = COMPRESSION[name];
  if (compression !== CompressionTypes.None && !codecAvailable(compression))
    throw new InvalidOptionsError(
      'kafka.producer.compression',
      `"${name}" needs a codec registered with kafkajs before the broker is constructed ` +
        `(CompressionCodecs[CompressionTypes.${CODEC_NAMES[name]}] = <codec>, for example from kafkajs-${name}), ` +
        `or use "gzip", which kafkajs has built in`,
    );
  const lingerMs = integerOption('kafka.producer.lingerMs', options.lingerMs, {
    fallback: 0,
    min: 0,
    max: 1000,
    why: 'a publish waiting longer holds the relay batch that much longer',
  });
  const batchSize =
    options.batchSize === undefined
      ? Infinity
      : integerOption('kafka.producer.batchSize', options.batchSize, { fallback: 1, min: 1 });
  return { compression, lingerMs, batchSize };
}

/** Whether kafkajs can compress with `type`: its factory exists and does not throw "not implemented". */
function codecAvailable(type: CompressionTypes): boolean {
  const factory = (CompressionCodecs as Partial<Record<CompressionTypes, () => unknown>>)[type];
  if (typeof factory !== 'function') return false;
  try {
    factory();
    return true;
  } catch {
    return false;
  }
}
