/**
 * `npm run bench:scaling -- [flags]`:
 *   --quick                  CI size (small counts, RabbitMQ and Kafka only): about 2 minutes
 *   --processes 1,2,4        worker process counts per scenario
 *   --relay-messages N       outbox backlog each relay round drains       (default 20000; quick 2000)
 *   --consumer-messages N    messages each consumer round handles         (default 5000;  quick 600)
 *   --sagas N                sagas each saga round runs                   (default 2000;  quick 300)
 *   --brokers a,b            kafka, rabbitmq, nats                        (default all three; quick rabbitmq,kafka)
 *   --scenarios a,b          relay, consumer, saga                        (default all)
 *   --pool N                 each worker's DataSource pool size           (default 10, TypeORM's)
 *   --out FILE               results file  (default benchmarks/results/scaling.json)
 *   --doc FILE               doc whose generated section is rewritten (default docs/scaling.md)
 */
import path from 'node:path';
import { ROOT } from '../chaos/processes';
import { BROKER_KINDS, type BrokerKind } from '../harness/brokers';
import { SCALING_SCENARIOS, type ScalingScenario } from './results';

export interface ScalingOptions {
  quick: boolean;
  processCounts: number[];
  relayMessages: number;
  consumerMessages: number;
  sagas: number;
  brokers: BrokerKind[];
  scenarios: ScalingScenario[];
  poolSize: number;
  out: string;
  doc: string;
}

/** Most worker processes a round may start: beyond it a typo (40 for 4) would fork-bomb the box. */
export const MAX_PROCESSES = 16;
const MAX_ITEMS = 1_000_000;

function list<T extends string>(flag: string, value: string, allowed: readonly T[]): T[] {
  const items = value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
  const bad = items.filter((v) => !allowed.includes(v as T));
  if (bad.length || !items.length)
    throw new Error(`${flag}: expected a comma list of ${allowed.join(', ')}, got "${value}"`);
  return items as T[];
}

function int(flag: string, value: string, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new Error(`${flag}: expected a whole number from 1 to ${max}, got "${value}"`);
  return n;
}

export function parseScalingOptions(argv: readonly string[]): ScalingOptions {
  const quick = argv.includes('--quick');
  const o: ScalingOptions = {
    quick,
    processCounts: [1, 2, 4],
    relayMessages: quick ? 2000 : 20_000,
    consumerMessages: quick ? 600 : 5000,
    sagas: quick ? 300 : 2000,
    brokers: quick ? ['rabbitmq', 'kafka'] : [...BROKER_KINDS],
    scenarios: [...SCALING_SCENARIOS],
    poolSize: 10,
    out: path.join(ROOT, 'benchmarks', 'results', 'scaling.json'),
    doc: path.join(ROOT, 'docs', 'scaling.md'),
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--quick') continue;
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('--'))
      throw new Error(`${flag}: needs a value (see benchmarks/scaling/options.ts)`);
    i++;
    switch (flag) {
      case '--processes':
        o.processCounts = value.split(',').map((v) => int(flag, v.trim(), MAX_PROCESSES));
        break;
      case '--relay-messages':
        o.relayMessages = int(flag, value, MAX_ITEMS);
        break;
      case '--consumer-messages':
        o.consumerMessages = int(flag, value, MAX_ITEMS);
        break;
      case '--sagas':
        o.sagas = int(flag, value, MAX_ITEMS);
        break;
      case '--brokers':
        o.brokers = list(flag, value, BROKER_KINDS);
        break;
      case '--scenarios':
        o.scenarios = list(flag, value, SCALING_SCENARIOS);
        break;
      case '--pool':
        o.poolSize = int(flag, value, 100);
        break;
      case '--out':
        o.out = path.resolve(value);
        break;
      case '--doc':
        o.doc = path.resolve(value);
        break;
      default:
        throw new Error(`unknown flag ${flag} (see benchmarks/scaling/options.ts)`);
    }
  }
  o.processCounts = [...new Set(o.processCounts)].sort((a, b) => a - b);
  return o;
}
