import { transportMessageId } from './transport-message-id';

describe('transportMessageId', () => {
  it('takes the id itself, or the `id` of a Sage DeliveredMessage', () => {
    expect(transportMessageId('m-1')).toBe('m-1');
    expect(transportMessageId({ id: 'm-2', destination: 'orders' })).toBe('m-2');
    expect(transportMessageId('  ')).toBeUndefined();
    expect(transportMessageId(undefined)).toBeUndefined();
    expect(transportMessageId(42)).toBeUndefined();
  });

  it('Kafka (KafkaContext): header ce_id or ce-id, as Buffer, string or array', () => {
    const kafka = (headers: Record<string, unknown> | undefined) => ({
      getMessage: () => ({ key: null, value: null, offset: '1', headers }),
      getPartition: () => 0,
    });
    expect(transportMessageId(kafka({ ce_id: Buffer.from('k-1') }))).toBe('k-1');
    expect(transportMessageId(kafka({ 'ce-id': 'k-2' }))).toBe('k-2');
    expect(transportMessageId(kafka({ ce_id: [Buffer.from('k-3'), Buffer.from('x')] }))).toBe(
      'k-3',
    );
    expect(transportMessageId(kafka({ ce_id: new Uint8Array(Buffer.from('k-4')) }))).toBe('k-4');
    expect(transportMessageId(kafka({ other: 'x' }))).toBeUndefined();
    expect(transportMessageId(kafka(undefined))).toBeUndefined();
  });

  it('RabbitMQ (RmqContext): AMQP message-id property, else a CloudEvents id header', () => {
    const rmq = (properties: Record<string, unknown>) => ({
      getMessage: () => ({ content: Buffer.from('{}'), fields: {}, properties }),
      getChannelRef: () => ({}),
    });
    expect(transportMessageId(rmq({ messageId: 'r-1', headers: { 'ce-id': 'other' } }))).toBe(
      'r-1',
    );
    expect(transportMessageId(rmq({ headers: { 'cloudEvents:id': 'r-2' } }))).toBe('r-2');
    expect(transportMessageId(rmq({ headers: { cloudEvents_id: 'r-3' } }))).toBe('r-3');
    expect(transportMessageId(rmq({ messageId: '', headers: {} }))).toBeUndefined();
  });

  it('NATS (NatsContext): header Nats-Msg-Id, else ce-id; no headers → undefined', () => {
    const nats = (values: Record<string, string> | undefined) => ({
      getSubject: () => 'orders',
      getHeaders: () =>
        values && { get: (name: string) => values[name] ?? '' /* MsgHdrs returns '' */ },
    });
    expect(transportMessageId(nats({ 'Nats-Msg-Id': 'n-1', 'ce-id': 'x' }))).toBe('n-1');
    expect(transportMessageId(nats({ 'ce-id': 'n-2' }))).toBe('n-2');
    expect(transportMessageId(nats({}))).toBeUndefined();
    expect(transportMessageId(nats(undefined))).toBeUndefined();
  });
});
