import { Parser, type AsyncAPIDocumentInterface } from '@asyncapi/parser';
import { asyncApiProblems } from '../../cli/asyncapi-validation';
import { InvalidOptionsError } from '../errors';
import { asyncApiDocument, JSON_SCHEMA_2020_12_FORMAT, type AsyncApiService } from './asyncapi';
import { dataschemaOf, defineContract } from './message-contract';

// Documents are checked with the official parser (@asyncapi/parser): its errors and warnings.
const parser = new Parser();

async function parsed(doc: object): Promise<AsyncAPIDocumentInterface> {
  expect(await asyncApiProblems(doc)).toEqual([]);
  const { document } = await parser.parse(JSON.stringify(doc));
  if (!document) throw new Error('the parser gave no document');
  return document;
}

const money = {
  type: 'object',
  required: ['amountMinor', 'currency'],
  properties: { amountMinor: { type: 'integer' }, currency: { type: 'string' } },
};
const orderPlaced = defineContract({
  type: 'order.placed',
  version: 1,
  destination: 'orders',
  description: 'An order was placed.',
  schema: {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    required: ['orderId', 'total'],
    properties: { orderId: { type: 'string' }, total: { $ref: '#/$defs/money' } },
    $defs: { money },
  },
});
const orderPlacedV2 = defineContract({
  type: 'order.placed',
  version: 2,
  destination: 'orders',
  schema: {
    type: 'object',
    required: ['orderId', 'lines'],
    properties: {
      orderId: { type: 'string' },
      // prefixItems is JSON Schema 2020-12 only: the schema cannot pass as draft-07.
      lines: { type: 'array', prefixItems: [{ $ref: '#/$defs/line' }] },
    },
    $defs: { line: { type: 'object', properties: { sku: { type: 'string' } } } },
  },
});
const charge = defineContract({
  type: 'card.charge',
  version: 1,
  kind: 'command',
  destination: 'payments.commands',
  schema: { type: 'object', required: ['amount'], properties: { amount: { type: 'integer' } } },
  reply: { type: 'object', required: ['chargeId'], properties: { chargeId: { type: 'string' } } },
});
const refund = defineContract({
  type: 'card.refund',
  version: 1,
  kind: 'command',
  destination: 'payments.commands',
  schema: { type: 'object', properties: { chargeId: { type: 'string' } } },
});
const kafka = { kafka: { host: 'kafka:9092', protocol: 'kafka' } } as const;

const orchestrator: AsyncApiService = {
  id: 'order-service',
  version: '2.1.0',
  publishes: [orderPlaced, charge, refund],
  replyDestination: 'order-service.replies',
  servers: kafka,
};
const participant: AsyncApiService = {
  id: 'payment-service',
  version: '1.0.0',
  consumes: [charge, refund],
  consumerGroup: 'payment-service',
  servers: kafka,
};

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- reading a built document

describe('asyncApiDocument', () => {
  it('describes an orchestrator: its events, its commands sent, their replies on its reply destination', async () => {
    const doc = asyncApiDocument(orchestrator) as Json;
    const parsedDoc = await parsed(doc);
    expect(
      parsedDoc
        .channels()
        .all()
        .map((c) => c.address()),
    ).toEqual(['order-service.replies', 'orders', 'payments.commands']);
    expect(Object.keys(doc.operations as object)).toEqual([
      'send.card.charge',
      'send.card.refund',
      'send.order.placed',
    ]);
    expect(
      parsedDoc
        .operations()
        .all()
        .every((o) => o.action() === 'send'),
    ).toBe(true);
    expect(Object.keys(doc.components.messages as object)).toEqual([
      'card.charge.v1',
      'card.charge.v1.reply',
      'card.refund.v1',
      'card.refund.v1.reply',
      'order.placed.v1',
    ]);

    // The command's payload is its schema; its reply travels on the reply destination.
    const send = parsedDoc.operations().get('send.card.charge')!;
    expect(send.messages().all()[0]!.payload()!.json()).toMatchObject(charge.schema as object);
    const reply = send.reply()!;
    expect(reply.channel()!.address()).toBe('order-service.replies');
    const replyMessage = reply.messages().all()[0]!;
    expect(replyMessage.name()).toBe('sage.saga.reply');
    const replyPayload = replyMessage.payload()!.json() as Json;
    expect(replyPayload.oneOf[0].properties.result).toMatchObject(charge.reply as object);
    expect(replyPayload.oneOf[1].required).toEqual(['error']);
    expect(replyMessage.correlationId()!.location()).toBe('$message.header#/sage-idempotency-key');
    // A command without a reply schema: any result.
    expect(
      doc.components.messages['card.refund.v1.reply'].payload.oneOf[0].properties.result,
    ).toEqual({ description: expect.stringContaining('no `reply` schema') });

    // Headers: CloudEvents, the contract version, and Sage's saga headers on commands.
    const headers = doc.components.messages['card.charge.v1'].headers;
    expect(headers.properties['ce-type']).toEqual({ type: 'string', const: 'card.charge' });
    expect(headers.properties['ce-dataschema'].const).toBe(dataschemaOf('card.charge', 1));
    expect(headers.required).toEqual(expect.arrayContaining(['sage-saga-id', 'sage-reply-to']));
    expect(
      doc.components.messages['order.placed.v1'].headers.properties['sage-saga-id'],
    ).toBeUndefined();

    // Kafka: the ordering key on messages; a send has no consumer group.
    expect(doc.components.messages['card.charge.v1'].bindings.kafka).toMatchObject({
      key: { type: 'string' },
      bindingVersion: '0.5.0',
    });
    expect(doc.operations['send.card.charge'].bindings).toBeUndefined();
  });

  it('describes a participant: each command received, answered on its one reply destination', async () => {
    const doc = asyncApiDocument({
      ...participant,
      replyTo: ['order-service.replies'],
      consumerGroups: { 'card.refund': 'refunds' },
    }) as Json;
    const parsedDoc = await parsed(doc);
    expect(
      parsedDoc
        .channels()
        .all()
        .map((c) => c.address()),
    ).toEqual(['order-service.replies', 'payments.commands']);
    const receive = parsedDoc.operations().get('receive.card.charge')!;
    expect(receive.action()).toBe('receive');
    expect(receive.reply()!.channel()!.address()).toBe('order-service.replies');
    expect(receive.reply()!.address()).toBeUndefined();
    expect(doc.operations['receive.card.charge'].bindings.kafka.groupId).toEqual({
      type: 'string',
      enum: ['payment-service'],
    });
    expect(doc.operations['receive.card.refund'].bindings.kafka.groupId.enum).toEqual(['refunds']);
    expect(parsedDoc.messages().all()).toHaveLength(4);
  });

  it("answers on the command's sage-reply-to header when the reply destination is unknown or not one", async () => {
    for (const replyTo of [undefined, ['b.replies', 'a.replies']]) {
      const doc = asyncApiDocument({ ...participant, replyTo }) as Json;
      const parsedDoc = await parsed(doc);
      const reply = parsedDoc.operations().get('receive.card.charge')!.reply()!;
      expect(reply.address()!.location()).toBe('$message.header#/sage-reply-to');
      expect(reply.channel()!.address()).toBeNull();
      expect(doc.channels['sage-reply-to'].address).toBeNull();
      if (replyTo)
        expect(doc.channels['sage-reply-to'].description).toContain(
          'Known: `a.replies`, `b.replies`',
        );
    }
  });

  it('describes an event producer and consumer with RabbitMQ and NATS bindings', async () => {
    const servers = {
      rabbit: { host: 'rabbit:5672', protocol: 'amqp' },
      nats: { host: 'nats:4222', protocol: 'nats' },
    };
    const producer = asyncApiDocument({
      id: 'orders',
      version: '1.0.0',
      publishes: [orderPlaced],
      servers,
      amqpExchange: 'shop',
    }) as Json;
    const consumer = asyncApiDocument({
      id: 'billing',
      version: '1.0.0',
      consumes: [orderPlacedV2, orderPlaced],
      consumerGroup: 'billing',
      servers,
    }) as Json;
    await parsed(producer);
    const consumed = await parsed(consumer);

    expect(producer.channels.orders.bindings.amqp).toMatchObject({
      is: 'routingKey',
      exchange: { name: 'shop', type: 'topic', durable: true },
    });
    expect(producer.operations['send.order.placed'].bindings).toEqual({
      amqp: { deliveryMode: 2, mandatory: true, bindingVersion: '0.3.0' },
    });
    expect(consumer.operations['receive.order.placed'].bindings.nats).toEqual({
      queue: 'billing',
      bindingVersion: '0.1.0',
    });
    // Both versions, oldest first, on the one channel; no reply for an event.
    const receive = consumed.operations().get('receive.order.placed')!;
    expect(
      receive
        .messages()
        .all()
        .map((m) => m.name()),
    ).toEqual(['order.placed.v1', 'order.placed.v2']);
    expect(receive.reply()).toBeUndefined();
    expect(consumer.components.messages['order.placed.v1'].bindings.amqp.messageType).toBe(
      'order.placed',
    );
  });

  it('keeps a draft-07-compatible schema in the AsyncAPI format and a 2020-12 one in its own, $refs pointing into the document', async () => {
    const doc = asyncApiDocument({
      id: 'billing',
      version: '1.0.0',
      consumes: [orderPlaced, orderPlacedV2],
    }) as Json;
    const parsedDoc = await parsed(doc);
    const v1 = doc.components.messages['order.placed.v1'].payload;
    expect(v1.$schema).toBeUndefined();
    expect(v1.properties.total).toEqual({
      $ref: '#/components/messages/order.placed.v1/payload/$defs/money',
    });
    const v2 = doc.components.messages['order.placed.v2'].payload;
    expect(v2.schemaFormat).toBe(JSON_SCHEMA_2020_12_FORMAT);
    expect(v2.schema.properties.lines.prefixItems[0]).toEqual({
      $ref: '#/components/messages/order.placed.v2/payload/schema/$defs/line',
    });
    // The parser resolved the rewritten $ref to the money schema.
    const payload = parsedDoc.messages().get('order.placed.v1')!.payload()!;
    expect(payload.properties()!.total!.required()).toEqual(['amountMinor', 'currency']);
  });

  it('gives a contract without destination a channel named after its type, with a note', async () => {
    const loose = defineContract({ type: 'audit.noted', version: 1, schema: { type: 'object' } });
    const doc = asyncApiDocument({ id: 'a', version: '1', publishes: [loose] }) as Json;
    await parsed(doc);
    expect(doc.channels['audit.noted'].address).toBeNull();
    expect(doc.channels['audit.noted'].description).toContain('No `destination`');
  });

  it('is stable: the order contracts and servers are listed in changes nothing', () => {
    const a = asyncApiDocument({ ...orchestrator, publishes: [orderPlaced, charge, refund] });
    const b = asyncApiDocument({
      ...orchestrator,
      publishes: [refund, charge, orderPlaced],
      servers: { nats: { host: 'n', protocol: 'nats' }, ...kafka },
    });
    const c = asyncApiDocument({
      ...orchestrator,
      publishes: [charge, orderPlaced, refund],
      servers: { ...kafka, nats: { host: 'n', protocol: 'nats' } },
    });
    expect(JSON.stringify(b)).toBe(JSON.stringify(c));
    expect(JSON.stringify(a)).not.toBe(JSON.stringify(b)); // nats bindings added
    expect(JSON.stringify(asyncApiDocument(orchestrator))).toBe(JSON.stringify(a));
  });

  it('is checked by the parser: a wrong binding is an error, so a clean result means something', async () => {
    const doc = asyncApiDocument(participant) as Json;
    doc.operations['receive.card.charge'].bindings.kafka.bindingVersion = '9.9.9';
    const problems = await asyncApiProblems(doc);
    expect(problems.filter((p) => p.severity === 'error')).not.toEqual([]);
  });

  it('refuses a service without id or version, or listing a contract version twice', () => {
    expect(() => asyncApiDocument({ id: ' ', version: '1' })).toThrow(InvalidOptionsError);
    expect(() => asyncApiDocument({ id: 'a' } as AsyncApiService)).toThrow(/asyncapi\.version/);
    expect(() => asyncApiDocument({ id: 'a', version: '1', publishes: [charge, charge] })).toThrow(
      /"card\.charge" version 1 twice/,
    );
  });
});
