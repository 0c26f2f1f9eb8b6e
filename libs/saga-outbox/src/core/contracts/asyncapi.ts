import { InvalidOptionsError } from '../errors';
import { SAGA_HEADERS, SAGA_REPLY_TYPE } from '../saga/saga-command';
import {
  DATASCHEMA_HEADER,
  dataschemaOf,
  type JsonSchema,
  type MessageContract,
} from './message-contract';

/**
 * The AsyncAPI 3.0.0 document of one service, built from the contracts it publishes and consumes
 * (`sage asyncapi`). Pure: same input, same document, keys in a stable order, so a committed
 * document diffs cleanly.
 *
 * What maps to what:
 * - a destination (topic / routing key / subject) is a channel whose `address` is the destination;
 *   a contract without `destination` gets a channel named after its type with a null address and a
 *   note;
 * - each contract version is a message `<type>.v<version>` whose payload is the contract's schema
 *   and whose headers are the CloudEvents binary-mode headers Sage writes (with `ce-type` and
 *   `ce-dataschema` as constants) plus, for commands, the `sage-*` saga headers;
 * - what the service publishes is a `send` operation, what it consumes a `receive` operation, one
 *   per type (listing its versions);
 * - a command's reply (`sage.saga.reply`, payload `{ result }` or `{ error }`) is the operation's
 *   AsyncAPI `reply`: on the orchestrator's `send`, through `replyDestination`; on the
 *   participant's `receive`, through its one `replyTo` destination, else through the address the
 *   command's `sage-reply-to` header names;
 * - bindings for the protocols of `servers`: Kafka (message key, consumer group), AMQP (Sage's
 *   topic exchange with the destination as routing key), NATS (queue = consumer group).
 *
 * Schemas: @asyncapi/parser validates the AsyncAPI Schema format (a superset of JSON Schema
 * draft-07) but not draft 2020-12. A contract schema that uses only keywords draft-07 also has is
 * written in the AsyncAPI format (its `$schema` left out), so the parser checks it; one that uses
 * a keyword only 2020-12 has (`prefixItems`, `unevaluatedProperties`, `dependentRequired`,
 * `$dynamicRef`...) is written as a multi-format schema with schemaFormat
 * `application/schema+json;version=2020-12`, which tools pass through unchecked. In both, a
 * `$ref` inside the schema (`#/$defs/money`) is rewritten to point into the document.
 */

/** A broker the service's channels are on (AsyncAPI server). */
export interface AsyncApiServer {
  /** `host[:port]`, e.g. `kafka.internal:9092`. */
  readonly host: string;
  /** `kafka` (or `kafka-secure`), `amqp` / `amqps`, `nats`, or another AsyncAPI protocol. */
  readonly protocol: 'kafka' | 'kafka-secure' | 'amqp' | 'amqps' | 'nats' | (string & {});
  readonly description?: string;
}

/** What `asyncApiDocument` needs to describe one service. */
export interface AsyncApiService {
  /** The service's name, e.g. `order-service` (the document's `id` is `urn:sage:service:<id>`). */
  readonly id: string;
  /** Default: the id. */
  readonly title?: string;
  /** The version of the service's API (AsyncAPI `info.version`), e.g. `1.4.0`. */
  readonly version: string;
  readonly description?: string;
  /** Contracts of the events the service publishes and the saga commands its sagas send. */
  readonly publishes?: readonly MessageContract[];
  /** Contracts of the events the service consumes and the saga commands it handles as a participant. */
  readonly consumes?: readonly MessageContract[];
  /** Where this service's sagas receive replies (its `saga.replyTo` option). */
  readonly replyDestination?: string;
  /** The reply destinations this service, as a participant, answers commands on (when known). */
  readonly replyTo?: readonly string[];
  /** Consumer group of the service's receive operations (Kafka `groupId`, NATS `queue`). */
  readonly consumerGroup?: string;
  /** Consumer groups by message type, where one differs from `consumerGroup`. */
  readonly consumerGroups?: Readonly<Record<string, string>>;
  /** RabbitMQ topic exchange the destinations are routing keys on. Default `sage` (the adapter's). */
  readonly amqpExchange?: string;
  /** The brokers, by name; their protocols choose the bindings written. */
  readonly servers?: Readonly<Record<string, AsyncApiServer>>;
}

/** AsyncAPI version of the documents written. */
export const ASYNCAPI_VERSION = '3.0.0';
/** Schema format of a contract schema that uses JSON Schema 2020-12 keywords. */
export const JSON_SCHEMA_2020_12_FORMAT = 'application/schema+json;version=2020-12';

type Json = { [key: string]: unknown };
type Action = 'send' | 'receive';

const KAFKA = '0.5.0';
const AMQP = '0.3.0';
const NATS = '0.1.0';
const REPLY_TO_LOCATION = `$message.header#/${SAGA_HEADERS.replyTo}`;
const CORRELATION = {
  description: `The step's idempotency key (\`${SAGA_HEADERS.idempotencyKey}\`): the same on a command, its resends and its reply.`,
  location: `$message.header#/${SAGA_HEADERS.idempotencyKey}`,
};

/** Builds the AsyncAPI 3.0.0 document of `service` (InvalidOptionsError naming the bad field). */
export function asyncApiDocument(service: AsyncApiService): object {
  checkService(service);
  return new DocumentBuilder(service).build();
}

class DocumentBuilder {
  private readonly protocols: ReadonlySet<'kafka' | 'amqp' | 'nats'>;
  private readonly channels = new Map<string, Json>();
  private readonly channelKeys = new Map<string, string>();
  private readonly messages = new Map<string, Json>();
  private readonly operations = new Map<string, Json>();

  constructor(private readonly service: AsyncApiService) {
    const set = new Set<'kafka' | 'amqp' | 'nats'>();
    for (const server of Object.values(service.servers ?? {})) {
      const p = server.protocol.toLowerCase();
      if (p === 'kafka' || p === 'kafka-secure') set.add('kafka');
      else if (p === 'amqp' || p === 'amqps') set.add('amqp');
      else if (p === 'nats') set.add('nats');
    }
    this.protocols = set;
  }

  build(): object {
    const s = this.service;
    for (const group of groups(s)) this.addOperation(group);
    const info: Json = { title: s.title ?? s.id, version: s.version };
    if (s.description) info.description = s.description;
    const doc: Json = { asyncapi: ASYNCAPI_VERSION, id: `urn:sage:service:${s.id}`, info };
    if (s.servers && Object.keys(s.servers).length) doc.servers = servers(s.servers);
    doc.defaultContentType = 'application/json';
    doc.channels = sortedObject(this.channels);
    doc.operations = sortedObject(this.operations);
    doc.components = { messages: sortedObject(this.messages) };
    return doc;
  }

  private addOperation(group: Group): void {
    const { action, type, contracts } = group;
    const channelKey = group.destination
      ? this.channel(group.destination)
      : this.channel(null, type, {
          title: type,
          description: `No \`destination\` in the contract of "${type}": set it in defineContract to document where it travels.`,
        });
    const messageKeys = contracts.map((c) => this.message(c));
    for (const key of messageKeys) this.channelMessage(channelKey, key);
    const command = contracts.some((c) => c.kind === 'command');
    const operation: Json = {
      action,
      channel: ref(`channels/${channelKey}`),
      title: `${action === 'send' ? 'Send' : 'Receive'} ${type}`,
      summary: summaryOf(action, type, command),
      messages: messageKeys.map((key) => ref(`channels/${channelKey}/messages/${key}`)),
    };
    const description = contracts.at(-1)?.description;
    if (description) operation.description = description;
    if (command) operation.reply = this.reply(action, contracts);
    const bindings = this.operationBindings(action, type);
    if (bindings) operation.bindings = bindings;
    this.operations.set(unique(this.operations, `${action}.${keyOf(type)}`), operation);
  }

  /** The reply half of a command's operation (AsyncAPI 3 Operation Reply Object). */
  private reply(action: Action, contracts: readonly MessageContract[]): Json {
    const known =
      action === 'send'
        ? this.service.replyDestination
          ? [this.service.replyDestination]
          : []
        : [...new Set(this.service.replyTo ?? [])].sort();
    const keys = contracts.map((c) => this.replyMessage(c));
    if (known.length === 1) {
      const channelKey = this.channel(known[0]!);
      for (const key of keys) this.channelMessage(channelKey, key);
      return {
        channel: ref(`channels/${channelKey}`),
        messages: keys.map((key) => ref(`channels/${channelKey}/messages/${key}`)),
      };
    }
    const channelKey = this.channel(null, SAGA_HEADERS.replyTo, {
      title: 'Saga replies',
      description:
        `The destination a command's \`${SAGA_HEADERS.replyTo}\` header names: where its participant sends the reply.` +
        (known.length ? ` Known: ${known.map((d) => `\`${d}\``).join(', ')}.` : ''),
    });
    for (const key of keys) this.channelMessage(channelKey, key);
    return {
      address: {
        description: `The command's \`${SAGA_HEADERS.replyTo}\` header.`,
        location: REPLY_TO_LOCATION,
      },
      channel: ref(`channels/${channelKey}`),
      messages: keys.map((key) => ref(`channels/${channelKey}/messages/${key}`)),
    };
  }

  /** The key of the channel of `address` (null: unknown, named after `name`), created on first use. */
  private channel(address: string | null, name?: string, about?: Json): string {
    const identity = address === null ? `\u0000${name}` : address;
    const existing = this.channelKeys.get(identity);
    if (existing) return existing;
    const key = unique(this.channels, keyOf(address ?? name ?? 'channel'));
    this.channelKeys.set(identity, key);
    const channel: Json = { address, ...about, messages: new Map<string, Json>() };
    const bindings = this.channelBindings();
    if (bindings) channel.bindings = bindings;
    this.channels.set(key, channel);
    return key;
  }

  private channelMessage(channelKey: string, messageKey: string): void {
    const messages = this.channels.get(channelKey)!.messages as Map<string, Json>;
    messages.set(messageKey, ref(`components/messages/${messageKey}`));
  }

  /** The key of a contract version's message, created on first use. */
  private message(c: MessageContract): string {
    const key = keyOf(`${c.type}.v${c.version}`);
    if (this.messages.has(key)) return key;
    const command = c.kind === 'command';
    const message: Json = {
      name: `${c.type}.v${c.version}`,
      title: `${c.type} v${c.version}`,
    };
    if (c.description) message.summary = c.description;
    message.contentType = 'application/json';
    message.headers = headersSchema(c.type, {
      dataschema: dataschemaOf(c.type, c.version),
      saga: command ? 'command' : undefined,
    });
    message.payload = payloadSchema(c.schema, `/components/messages/${key}/payload`);
    if (command) message.correlationId = CORRELATION;
    const bindings = this.messageBindings(
      c.type,
      command
        ? "The saga id by default (the command's `key`): a step's command and its compensation stay in order."
        : 'The key given at publish (`ce-subject`); messages with one key stay in order. Absent when published without a key.',
    );
    if (bindings) message.bindings = bindings;
    this.messages.set(key, message);
    return key;
  }

  /** The key of the reply message to a command version, created on first use. */
  private replyMessage(c: MessageContract): string {
    const key = `${keyOf(`${c.type}.v${c.version}`)}.reply`;
    if (this.messages.has(key)) return key;
    const base = `/components/messages/${key}/payload`;
    const result = c.reply ?? {
      description: 'Any JSON value: the contract declares no `reply` schema.',
    };
    const uses2020 = keywords2020(result).length > 0;
    const inner = rewriteRefs(
      withoutDialect(result),
      `${base}${uses2020 ? '/schema' : ''}/oneOf/0/properties/result`,
    );
    const schema: Json = {
      oneOf: [
        {
          title: 'success',
          type: 'object',
          required: ['result'],
          properties: { result: inner },
          additionalProperties: false,
        },
        {
          title: 'failure',
          type: 'object',
          required: ['error'],
          properties: { error: { type: 'string', description: 'Why the participant refused.' } },
          additionalProperties: false,
        },
      ],
    };
    const message: Json = {
      name: SAGA_REPLY_TYPE,
      title: `Reply to ${c.type} v${c.version}`,
      summary: `The participant's answer to a "${c.type}" command: \`{ result }\` on success (header ${SAGA_HEADERS.outcome}: success), \`{ error }\` on failure.`,
      contentType: 'application/json',
      headers: headersSchema(SAGA_REPLY_TYPE, { saga: 'reply', commandType: c.type }),
      payload: uses2020 ? { schemaFormat: JSON_SCHEMA_2020_12_FORMAT, schema } : schema,
      correlationId: CORRELATION,
    };
    const bindings = this.messageBindings(
      SAGA_REPLY_TYPE,
      'The saga id: replies of one saga stay in order.',
    );
    if (bindings) message.bindings = bindings;
    this.messages.set(key, message);
    return key;
  }

  private channelBindings(): Json | undefined {
    if (!this.protocols.has('amqp')) return undefined;
    return {
      amqp: {
        is: 'routingKey',
        exchange: {
          name: this.service.amqpExchange ?? 'sage',
          type: 'topic',
          durable: true,
          autoDelete: false,
          vhost: '/',
        },
        bindingVersion: AMQP,
      },
    };
  }

  private operationBindings(action: Action, type: string): Json | undefined {
    const bindings: Json = {};
    const group = this.service.consumerGroups?.[type] ?? this.service.consumerGroup;
    if (this.protocols.has('kafka') && action === 'receive' && group)
      bindings.kafka = { groupId: { type: 'string', enum: [group] }, bindingVersion: KAFKA };
    if (this.protocols.has('amqp'))
      bindings.amqp =
        action === 'send'
          ? { deliveryMode: 2, mandatory: true, bindingVersion: AMQP }
          : { ack: true, bindingVersion: AMQP };
    if (this.protocols.has('nats') && action === 'receive' && group)
      bindings.nats = { queue: group, bindingVersion: NATS };
    return Object.keys(bindings).length ? bindings : undefined;
  }

  private messageBindings(type: string, key: string): Json | undefined {
    const bindings: Json = {};
    if (this.protocols.has('kafka'))
      bindings.kafka = { key: { type: 'string', description: key }, bindingVersion: KAFKA };
    if (this.protocols.has('amqp')) bindings.amqp = { messageType: type, bindingVersion: AMQP };
    return Object.keys(bindings).length ? bindings : undefined;
  }
}

// --- operations: one per (action, type, destination) -------------------------------------------

interface Group {
  action: Action;
  type: string;
  destination: string | undefined;
  contracts: MessageContract[];
}

function groups(service: AsyncApiService): Group[] {
  const byKey = new Map<string, Group>();
  const seen = new Set<string>();
  for (const [action, list] of [
    ['send', service.publishes ?? []],
    ['receive', service.consumes ?? []],
  ] as const) {
    for (const c of list) {
      const id = `${action}\u0000${c.type}\u0000${c.version}`;
      if (seen.has(id))
        throw new InvalidOptionsError(
          `asyncapi.${action === 'send' ? 'publishes' : 'consumes'}`,
          `lists "${c.type}" version ${c.version} twice; list each contract version once`,
        );
      seen.add(id);
      const key = `${c.type}\u0000${action}\u0000${c.destination ?? ''}`;
      const group = byKey.get(key) ?? {
        action,
        type: c.type,
        destination: c.destination,
        contracts: [],
      };
      group.contracts.push(c);
      byKey.set(key, group);
    }
  }
  return [...byKey.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, g]) => ({ ...g, contracts: [...g.contracts].sort((a, b) => a.version - b.version) }));
}

function summaryOf(action: Action, type: string, command: boolean): string {
  if (!command)
    return action === 'send'
      ? `Publishes "${type}" through the outbox.`
      : `Consumes "${type}" through the inbox (validated before the handler runs).`;
  return action === 'send'
    ? `A saga sends the "${type}" command through the outbox and waits for its reply.`
    : `Handles the "${type}" command once (inbox) and sends the reply through the outbox.`;
}

// --- headers ------------------------------------------------------------------------------------

function headersSchema(
  type: string,
  options: { dataschema?: string; saga?: 'command' | 'reply'; commandType?: string },
): Json {
  const text = (description: string): Json => ({ type: 'string', description });
  const properties: Json = {
    'ce-specversion': { type: 'string', const: '1.0' },
    'ce-id': text('The message id (the outbox id); the inbox deduplicates on it.'),
    'ce-type': { type: 'string', const: type },
    'ce-source': text("The publishing service (the broker adapter's `source`)."),
    'ce-time': { type: 'string', format: 'date-time', description: 'When it was published.' },
    'ce-subject': text('The ordering key, when the message has one.'),
  };
  if (options.dataschema)
    properties[DATASCHEMA_HEADER] = {
      type: 'string',
      const: options.dataschema,
      description: 'The contract version of the payload.',
    };
  properties['content-type'] = { type: 'string', const: 'application/json' };
  properties.traceparent = {
    type: 'string',
    pattern: '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$',
    description: 'W3C Trace Context of the publishing span.',
  };
  const required = ['ce-id', 'ce-source', 'ce-specversion', 'ce-type'];
  if (options.saga) {
    const h = SAGA_HEADERS;
    properties[h.sagaId] = text('The saga instance id.');
    properties[h.saga] = text('The saga name.');
    properties[h.step] = text('The step name.');
    properties[h.phase] = { type: 'string', enum: ['forward', 'compensate'] };
    properties[h.attempt] = {
      type: 'string',
      pattern: '^[1-9][0-9]{0,8}$',
      description: 'The attempt of the command (echoed on the reply).',
    };
    properties[h.idempotencyKey] = text(
      "The step's idempotency key (`sagaId:step`, or `sagaId:step:compensate`): deduplicate effects on it.",
    );
    if (options.saga === 'command') {
      properties[h.replyTo] = text('Where the participant sends the reply.');
      required.push(h.sagaId, h.saga, h.step, h.phase, h.idempotencyKey, h.replyTo);
    } else {
      properties[h.outcome] = { type: 'string', enum: ['success', 'failure'] };
      properties[h.commandType] = {
        type: 'string',
        ...(options.commandType ? { const: options.commandType } : {}),
        description: 'The type of the command answered.',
      };
      required.push(
        h.sagaId,
        h.saga,
        h.step,
        h.phase,
        h.attempt,
        h.idempotencyKey,
        h.outcome,
        h.commandType,
      );
    }
  }
  return { type: 'object', required: required.sort(), properties };
}

// --- payload schemas ----------------------------------------------------------------------------

/** Keywords JSON Schema 2020-12 has and draft-07 (so the AsyncAPI Schema format) does not. */
const ONLY_2020 = new Set([
  'prefixItems',
  'unevaluatedItems',
  'unevaluatedProperties',
  'dependentRequired',
  'dependentSchemas',
  'minContains',
  'maxContains',
  '$dynamicRef',
  '$dynamicAnchor',
  '$recursiveRef',
  '$recursiveAnchor',
  '$anchor',
  '$vocabulary',
]);

/** A contract schema as a message payload at JSON pointer `at` (see the module comment). */
function payloadSchema(schema: JsonSchema, at: string): unknown {
  if (keywords2020(schema).length === 0) return rewriteRefs(withoutDialect(schema), at);
  return {
    schemaFormat: JSON_SCHEMA_2020_12_FORMAT,
    schema: rewriteRefs(withoutDialect(schema), `${at}/schema`),
  };
}

/** The 2020-12-only keywords `schema` uses (schema positions only, not property names or values). */
function keywords2020(schema: unknown): string[] {
  const found = new Set<string>();
  walkSchema(schema, (node) => {
    for (const k of Object.keys(node)) if (ONLY_2020.has(k)) found.add(k);
  });
  return [...found].sort();
}

/** The schema without its top-level `$schema` (the format says the dialect). */
function withoutDialect(schema: JsonSchema): JsonSchema {
  if (typeof schema !== 'object') return schema;
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

/** A copy of `schema` whose document-local `$ref`s (`#/…`) point under `at` in the AsyncAPI document. */
function rewriteRefs(schema: unknown, at: string): unknown {
  const copy = structuredClone(schema);
  walkSchema(copy, (node) => {
    const target = node.$ref;
    if (typeof target === 'string' && target.startsWith('#'))
      node.$ref = `#${at}${target.slice(1)}`;
  });
  return copy;
}

const SCHEMA_MAPS = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'];
const SCHEMA_ARRAYS = ['allOf', 'anyOf', 'oneOf', 'prefixItems'];
const SCHEMA_ONE = [
  'items',
  'additionalItems',
  'additionalProperties',
  'unevaluatedItems',
  'unevaluatedProperties',
  'contains',
  'propertyNames',
  'not',
  'if',
  'then',
  'else',
];

/** Calls `visit` on every subschema object of `schema` (itself included). */
function walkSchema(schema: unknown, visit: (node: Json) => void): void {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return;
  const node = schema as Json;
  visit(node);
  for (const k of SCHEMA_MAPS) {
    const map = node[k];
    if (typeof map === 'object' && map !== null && !Array.isArray(map))
      for (const sub of Object.values(map)) walkSchema(sub, visit);
  }
  for (const k of SCHEMA_ARRAYS) {
    const list = node[k];
    if (Array.isArray(list)) for (const sub of list) walkSchema(sub, visit);
  }
  for (const k of SCHEMA_ONE) {
    const sub = node[k];
    if (Array.isArray(sub)) for (const s of sub) walkSchema(s, visit);
    else walkSchema(sub, visit);
  }
}

// --- small helpers ------------------------------------------------------------------------------

/** An AsyncAPI map key (`^[A-Za-z0-9._-]+$`) for a name: other characters become `_`. */
function keyOf(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_') || '_';
}

/** `base`, or `base_2`, `base_3`... when `map` already has it. */
function unique(map: ReadonlyMap<string, unknown>, base: string): string {
  let key = base;
  for (let n = 2; map.has(key); n++) key = `${base}_${n}`;
  return key;
}

function ref(pointer: string): Json {
  return { $ref: `#/${pointer}` };
}

/** A plain object with `map`'s entries sorted by key (nested Maps too). */
function sortedObject(map: ReadonlyMap<string, unknown>): Json {
  const out: Json = {};
  for (const key of [...map.keys()].sort()) {
    const value = map.get(key);
    out[key] = value instanceof Map ? sortedObject(value) : plain(value);
  }
  return out;
}

function plain(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value as Json))
    out[k] = v instanceof Map ? sortedObject(v) : v;
  return out;
}

function servers(list: Readonly<Record<string, AsyncApiServer>>): Json {
  const out: Json = {};
  for (const name of Object.keys(list).sort()) {
    const s = list[name]!;
    out[name] = {
      host: s.host,
      protocol: s.protocol,
      ...(s.description ? { description: s.description } : {}),
    };
  }
  return out;
}

function checkService(service: AsyncApiService): void {
  if (typeof service !== 'object' || service === null)
    throw new InvalidOptionsError(
      'asyncapi',
      'must be an object { id, version, publishes?, consumes? }',
    );
  for (const field of ['id', 'version'] as const)
    if (typeof service[field] !== 'string' || !service[field].trim())
      throw new InvalidOptionsError(`asyncapi.${field}`, 'must be a non-empty string');
  for (const field of ['publishes', 'consumes'] as const) {
    const list = service[field];
    if (list === undefined) continue;
    if (!Array.isArray(list))
      throw new InvalidOptionsError(
        `asyncapi.${field}`,
        'must be an array of contracts (defineContract)',
      );
    list.forEach((c: MessageContract, i) => {
      if (
        typeof c !== 'object' ||
        c === null ||
        typeof c.type !== 'string' ||
        !Number.isInteger(c.version)
      )
        throw new InvalidOptionsError(
          `asyncapi.${field}[${i}]`,
          'must be a contract { type, version, schema } (defineContract)',
        );
    });
  }
  if (service.replyTo !== undefined && !Array.isArray(service.replyTo))
    throw new InvalidOptionsError('asyncapi.replyTo', 'must be an array of destinations');
  for (const [name, s] of Object.entries(service.servers ?? {}))
    if (typeof s?.host !== 'string' || typeof s.protocol !== 'string')
      throw new InvalidOptionsError(`asyncapi.servers.${name}`, 'must be { host, protocol }');
}
