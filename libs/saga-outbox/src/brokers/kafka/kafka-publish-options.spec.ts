import { CompressionTypes } from 'kafkajs';
import { InvalidOptionsError } from '../../core/errors';
import { KafkaBroker } from './kafka-broker';
import { kafkaPublishSettings } from './kafka-publish-options';

describe('kafkaPublishSettings', () => {
  it('defaults to no compression, no linger and no batch limit', () => {
    expect(kafkaPublishSettings()).toEqual({
      compression: CompressionTypes.None,
      lingerMs: 0,
      batchSize: Infinity,
    });
  });

  it('takes gzip, a linger and a batch size', () => {
    expect(kafkaPublishSettings({ compression: 'gzip', lingerMs: 5, batchSize: 100 })).toEqual({
      compression: CompressionTypes.GZIP,
      lingerMs: 5,
      batchSize: 100,
    });
  });

  it('rejects a codec kafkajs has no implementation of, saying how to register one', () => {
    expect(() => kafkaPublishSettings({ compression: 'snappy' })).toThrow(
      new InvalidOptionsError(
        'kafka.producer.compression',
        '"snappy" needs a codec registered with kafkajs before the broker is constructed ' +
          '(CompressionCodecs[CompressionTypes.Snappy] = <codec>, for example from kafkajs-snappy), ' +
          'or use "gzip", which kafkajs has built in',
      ),
    );
  });

  it.each([
    [{ compression: 'brotli' as never }, 'kafka.producer.compression', 'must be one of'],
    [{ lingerMs: -1 }, 'kafka.producer.lingerMs', 'must be an integer >= 0 and <= 1000'],
    [{ lingerMs: 1.5 }, 'kafka.producer.lingerMs', 'got 1.5'],
    [{ lingerMs: 5000 }, 'kafka.producer.lingerMs', 'holds the relay batch'],
    [{ batchSize: 0 }, 'kafka.producer.batchSize', 'must be an integer >= 1, got 0'],
  ])('rejects %j naming the option', (producer, option, text) => {
    let error: unknown;
    try {
      kafkaPublishSettings(producer);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as Error).message).toContain(option);
    expect((error as Error).message).toContain(text);
  });

  it('is checked by the KafkaBroker constructor, before anything connects', () => {
    expect(
      () => new KafkaBroker({ brokers: ['127.0.0.1:1'], producer: { batchSize: -3 } }),
    ).toThrow(InvalidOptionsError);
  });
});
