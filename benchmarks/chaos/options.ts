/** The chaos command's options: parsed, checked and defaulted in one place. */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_FAULTS, FAULT_TYPES, type FaultType } from './faults';
import { ROOT } from './processes';
import { RELAY_MODES, type RelayMode } from './relay-mode';
import { CHAOS_BROKERS, type ChaosBroker } from './topology';

export interface ChaosOptions {
  brokers: ChaosBroker[];
  /** Messages service A commits (plain + saga messages), per broker. */
  messages: number;
  /** Target production rate, messages per second (all producers together). */
  rate: number;
  keys: number;
  perTx: number;
  /** Share of the messages that come from saga steps (about). */
  sagaShare: number;
  sagaFailEvery: number;
  producers: number;
  consumers: number;
  relays: number;
  /** How the relays read the outbox: claim polling (default) or the WAL stream (relay-mode.ts). */
  relayMode: RelayMode;
  faults: FaultType[];
  faultIntervalMs: number;
  heavyIntervalMs: number;
  relayDowntimeMs: number;
  seed: number;
  /** Hard bound on one broker's run, from its first server start to its verdict. */
  deadlineMs: number;
  drainTimeoutMs: number;
  inboxMaxAttempts: number;
  outDir: string;
  /** The doc whose "Chaos at scale" section is regenerated from out-dir; null: none. */
  docs: string | null;
  docsOnly: boolean;
  servicesDir: string;
  /** Null: the first free block from 27100 (see freePortBase). */
  portBase: number | null;
  keepServices: boolean;
  /** The arguments as given, for the reproduction command in the report. */
  argv: string[];
}

export const USAGE = `npm run chaos -- [options]

Chaos at scale: service A commits business rows + outbox messages (per-key sequences) and sagas
whose steps publish; standalone sage-relay processes publish them; service B consumes them through
the inbox (@IdempotentHandler) into PostgreSQL. Meanwhile relays are killed -9, the broker is
restarted, PostgreSQL is restarted (fast) and killed -9. The checker then counts lost, duplicated
and reordered effects and non-terminal sagas, and times the recovery after each fault. It runs
against its own PostgreSQL and broker (scripts/services.sh on a private directory and ports).

  --broker B             kafka, rabbitmq, nats or all (default all)
  --messages N           messages per broker (default 100000); production goes on past it until
                         every enabled fault has happened at least once
  --rate R               target messages/s, all producers together (default 400)
  --duration S           production time in seconds: sets --rate to messages / S
  --keys N               ordering keys of the plain messages (default 1000)
  --per-tx N             messages per business transaction (default 4)
  --saga-share F         about this share of the messages comes from saga steps (default 0.1)
  --saga-fail-every N    every N-th saga fails at its pivot and compensates (default 10)
  --producers N          service A replicas (default 2)
  --consumers N          service B replicas (default 1; kafka only above 1: see the report)
  --relays N             sage-relay processes (default 2)
  --relay-mode M         polling (default) or wal: the WAL-streaming relay (SAGE_RELAY_MODE=wal,
                         one slot: one relay streams, the others stand by); same faults, and
                         duplicate deliveries checked against its bound (maxWindow + one
                         transaction's messages per fault); results in chaos-<broker>-wal.*
  --faults LIST          of ${FAULT_TYPES.join(', ')}
                         (default ${DEFAULT_FAULTS.join(',')}; "none" for a baseline)
  --fault-interval S     a relay is killed -9 every S seconds, ± 25 % (default 5)
  --heavy-interval S     a broker / PostgreSQL fault every S seconds, ± 25 % (default 20)
  --relay-downtime S     seconds between a relay's kill and its replacement (default 1)
  --seed N               seeds keys, fault order, jitter and victims (default: random, printed)
  --deadline S           hard bound on each broker's run, seconds (default: 4 × the production
                         time at the target rate + 600)
  --drain-timeout S      after production, wait for every effect until nothing has moved
                         (no effect, publish or saga step) for S seconds (default 120)
  --inbox-max-attempts N service B's inbox attempts before dead-lettering (default 100)
  --out-dir DIR          chaos-<broker>.json and .md go here (default benchmarks/results)
  --docs FILE            regenerate its "Chaos at scale" section (default docs/benchmarks.md)
  --no-docs              leave the docs alone
  --docs-only            only regenerate the docs section from out-dir
  --services-dir DIR     private servers' state, one subdirectory per run (default /var/tmp/sage-chaos)
  --port-base N          private servers listen on 127.0.0.1:N..N+7 (default: the first free
                         block of 8 from 27100, in steps of 10)
  --keep-services        leave the private servers and their data after the run
  --help

Exit status: 0 when every broker's run lost nothing, applied nothing twice or out of order and
left no saga unfinished; 1 otherwise (the report says why); 2 on bad options.`;

function positive(name: string, value: string | undefined, fallback: number, integer = true) {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
    throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got ${value}`);
  return n;
}

export function parseOptions(argv: string[]): ChaosOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      broker: { type: 'string', default: 'all' },
      messages: { type: 'string' },
      rate: { type: 'string' },
      duration: { type: 'string' },
      keys: { type: 'string' },
      'per-tx': { type: 'string' },
      'saga-share': { type: 'string' },
      'saga-fail-every': { type: 'string' },
      producers: { type: 'string' },
      consumers: { type: 'string' },
      relays: { type: 'string' },
      'relay-mode': { type: 'string', default: 'polling' },
      faults: { type: 'string' },
      'fault-interval': { type: 'string' },
      'heavy-interval': { type: 'string' },
      'relay-downtime': { type: 'string' },
      seed: { type: 'string' },
      deadline: { type: 'string' },
      'drain-timeout': { type: 'string' },
      'inbox-max-attempts': { type: 'string' },
      'out-dir': { type: 'string' },
      docs: { type: 'string' },
      'no-docs': { type: 'boolean', default: false },
      'docs-only': { type: 'boolean', default: false },
      'services-dir': { type: 'string' },
      'port-base': { type: 'string' },
      'keep-services': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return 'help';

  const brokers =
    values.broker === 'all'
      ? [...CHAOS_BROKERS]
      : values.broker.split(',').map((b) => {
          if (!(CHAOS_BROKERS as readonly string[]).includes(b))
            throw new Error(
              `--broker must be one of ${CHAOS_BROKERS.join(', ')} or all, got ${b}` +
                (b === 'memory'
                  ? ' (memory is not offered: the relays are separate processes an in-process broker cannot reach)'
                  : ''),
            );
          return b as ChaosBroker;
        });
  const messages = positive('messages', values.messages, 100_000);
  const durationS =
    values.duration === undefined ? undefined : positive('duration', values.duration, 0, false);
  const rate = durationS ? messages / durationS : positive('rate', values.rate, 400, false);
  const faults =
    values.faults === undefined
      ? [...DEFAULT_FAULTS]
      : values.faults === 'none'
        ? []
        : values.faults.split(',').map((f) => {
            if (!(FAULT_TYPES as readonly string[]).includes(f))
              throw new Error(`--faults: unknown fault ${f}; known: ${FAULT_TYPES.join(', ')}`);
            return f as FaultType;
          });
  const consumers = positive('consumers', values.consumers, 1);
  if (consumers > 1 && brokers.some((b) => b !== 'kafka'))
    throw new Error(
      '--consumers above 1 only with --broker kafka: on RabbitMQ and NATS replicas of one group compete ' +
        'for a queue / durable consumer, where Sage does not promise per-key order (docs/inbox.md)',
    );
  const relayMode = values['relay-mode'] as RelayMode;
  if (!RELAY_MODES.includes(relayMode))
    throw new Error(`--relay-mode must be ${RELAY_MODES.join(' or ')}, got ${relayMode}`);
  const sagaShare = positive('saga-share', values['saga-share'], 0.1, false);
  if (sagaShare >= 1) throw new Error('--saga-share must be below 1');
  const productionMs = (messages / rate) * 1000;
  const drainTimeoutMs = positive('drain-timeout', values['drain-timeout'], 120, false) * 1000;
  return {
    brokers,
    messages,
    rate,
    keys: positive('keys', values.keys, 1000),
    perTx: positive('per-tx', values['per-tx'], 4),
    sagaShare,
    sagaFailEvery: positive('saga-fail-every', values['saga-fail-every'], 10),
    producers: positive('producers', values.producers, 2),
    consumers,
    relays: positive('relays', values.relays, 2),
    relayMode,
    faults,
    faultIntervalMs: positive('fault-interval', values['fault-interval'], 5, false) * 1000,
    heavyIntervalMs: positive('heavy-interval', values['heavy-interval'], 20, false) * 1000,
    relayDowntimeMs: positive('relay-downtime', values['relay-downtime'], 1, false) * 1000,
    seed:
      values.seed === undefined
        ? Math.floor(Math.random() * 2 ** 31)
        : positive('seed', values.seed, 1),
    deadlineMs:
      values.deadline === undefined
        ? Math.round(4 * productionMs + 600_000)
        : positive('deadline', values.deadline, 0, false) * 1000,
    drainTimeoutMs,
    inboxMaxAttempts: positive('inbox-max-attempts', values['inbox-max-attempts'], 100),
    outDir: path.resolve(values['out-dir'] ?? path.join(ROOT, 'benchmarks', 'results')),
    docs: values['no-docs']
      ? null
      : path.resolve(values.docs ?? path.join(ROOT, 'docs', 'benchmarks.md')),
    docsOnly: values['docs-only'],
    servicesDir: path.resolve(values['services-dir'] ?? '/var/tmp/sage-chaos'),
    portBase:
      values['port-base'] === undefined ? null : positive('port-base', values['port-base'], 0),
    keepServices: values['keep-services'],
    argv,
  };
}
