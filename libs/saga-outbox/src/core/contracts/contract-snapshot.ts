import { canonicalJson } from '../canonical-json';
import { InvalidOptionsError } from '../errors';
import type { JsonValue } from '../json';
import {
  defineContract,
  type CompatibilityMode,
  type JsonSchema,
  type MessageContract,
} from './message-contract';
import { compareSchemas } from './schema-compatibility';

/** The `format` of a snapshot file; another value is refused, not guessed at. */
export const CONTRACT_SNAPSHOT_FORMAT = 'sage.contracts.v1';

/** One published version of a type, as recorded. */
export interface SnapshotVersion {
  readonly schema: JsonSchema;
  readonly reply?: JsonSchema;
  readonly compatibility: CompatibilityMode;
  /**
   * The version declares an `upcast` from the previous one: consumers on it turn older messages
   * into its shape, so what the new schema refuses of the previous one is not breaking for them
   * (`backward`); the upcaster's output is checked against the schema at run time.
   */
  readonly upcast?: true;
}

/**
 * The contracts as published (`sage contracts snapshot`, committed next to the code):
 * `contracts[type][version]`, keys sorted, so the file diffs cleanly in review.
 */
export interface ContractSnapshot {
  readonly format: typeof CONTRACT_SNAPSHOT_FORMAT;
  readonly contracts: Readonly<Record<string, Readonly<Record<string, SnapshotVersion>>>>;
}

/** One finding of {@link diffContractSnapshots}. */
export interface ContractChange {
  readonly type: string;
  /** The version the change is about; undefined for a whole type added or removed. */
  readonly version?: number;
  /** Which schema: the payload's, or a command's reply. */
  readonly schema?: 'schema' | 'reply';
  /** JSON pointer into that schema; `''` for its root or when the change is not inside one. */
  readonly path: string;
  readonly change: string;
  readonly breaking: boolean;
}

/** The verdict of {@link diffContractSnapshots}: compatible when no change is breaking. */
export interface ContractDiff {
  readonly compatible: boolean;
  readonly changes: readonly ContractChange[];
}

const MODES: readonly CompatibilityMode[] = ['backward', 'forward', 'full', 'none'];

/**
 * The snapshot of `contracts`: each checked with defineContract (InvalidOptionsError naming the
 * type and field), each (type, version) once. Schemas are stored as canonical JSON would order
 * them (sorted keys), so equal schemas give equal files.
 */
export function buildContractSnapshot(contracts: readonly MessageContract[]): ContractSnapshot {
  const list: unknown = contracts;
  if (!Array.isArray(list))
    throw new InvalidOptionsError(
      'contracts',
      'must be an array of contracts (defineContract(...))',
    );
  const byType = new Map<string, Map<number, SnapshotVersion>>();
  for (const raw of contracts) {
    const contract: MessageContract = defineContract(raw);
    const versions = byType.get(contract.type) ?? new Map<number, SnapshotVersion>();
    if (versions.has(contract.version))
      throw new InvalidOptionsError(
        `contracts["${contract.type}"] v${contract.version}`,
        'is declared twice; each version of a type once',
      );
    versions.set(contract.version, {
      schema: sortedJson(contract.schema) as JsonSchema,
      ...(contract.reply === undefined ? {} : { reply: sortedJson(contract.reply) as JsonSchema }),
      compatibility: contract.compatibility ?? 'backward',
      ...(contract.upcast === undefined ? {} : { upcast: true as const }),
    });
    byType.set(contract.type, versions);
  }
  const out: Record<string, Record<string, SnapshotVersion>> = {};
  for (const type of [...byType.keys()].sort()) {
    const versions = byType.get(type)!;
    out[type] = Object.fromEntries(
      [...versions.keys()].sort((a, b) => a - b).map((v) => [String(v), versions.get(v)!]),
    );
  }
  return { format: CONTRACT_SNAPSHOT_FORMAT, contracts: out };
}

/** A snapshot as file text: two-space indented JSON, one trailing newline. */
export function contractSnapshotText(snapshot: ContractSnapshot): string {
  return `${JSON.stringify(snapshot, null, 2)}\n`;
}

/**
 * Reads a parsed snapshot file, or says what is wrong with it (the caller names the file).
 */
export function parseContractSnapshot(
  value: unknown,
): { ok: true; snapshot: ContractSnapshot } | { ok: false; problem: string } {
  const fail = (problem: string) => ({ ok: false as const, problem });
  if (!isRecord(value) || value.format !== CONTRACT_SNAPSHOT_FORMAT)
    return fail(
      `is not a Sage contracts snapshot (expected "format": "${CONTRACT_SNAPSHOT_FORMAT}")`,
    );
  if (!isRecord(value.contracts)) return fail('has no "contracts" object');
  for (const [type, versions] of Object.entries(value.contracts)) {
    if (!isRecord(versions)) return fail(`contracts["${type}"] is not an object of versions`);
    for (const [version, entry] of Object.entries(versions)) {
      const at = `contracts["${type}"]["${version}"]`;
      if (!/^[1-9]\d{0,6}$/.test(version))
        return fail(`${at}: the version must be an integer >= 1`);
      if (!isRecord(entry) || !isSchema(entry.schema))
        return fail(`${at}: "schema" must be a JSON Schema (an object or a boolean)`);
      if (entry.reply !== undefined && !isSchema(entry.reply))
        return fail(`${at}: "reply" must be a JSON Schema (an object or a boolean)`);
      if (!MODES.includes(entry.compatibility as CompatibilityMode))
        return fail(`${at}: "compatibility" must be one of ${MODES.join(', ')}`);
      if (entry.upcast !== undefined && entry.upcast !== true)
        return fail(`${at}: "upcast" must be true when present`);
    }
  }
  return { ok: true, snapshot: value as unknown as ContractSnapshot };
}

/**
 * What changed from the published snapshot to the contracts declared now, type by type:
 * - a published version must stay exactly as it was (breaking unless identical: consumers and
 *   stored messages rely on it; publish a new version instead);
 * - a new version must be compatible with the latest version below it under the new version's
 *   declared mode (its reply schema too, under the same mode): see compareSchemas;
 * - a removed version or type is breaking (producers or stored messages may still use it), or
 *   only reported with `allowRemovals`;
 * - a new type is reported, never breaking.
 */
export function diffContractSnapshots(
  published: ContractSnapshot,
  current: ContractSnapshot,
  options: { allowRemovals?: boolean } = {},
): ContractDiff {
  const changes: ContractChange[] = [];
  const removalBreaks = options.allowRemovals !== true;
  const types = [
    ...new Set([...Object.keys(published.contracts), ...Object.keys(current.contracts)]),
  ].sort();
  for (const type of types) {
    const before = published.contracts[type];
    const after = current.contracts[type];
    if (!after) {
      changes.push({
        type,
        path: '',
        change: `type removed (published versions ${versionList(before!)}): producers or stored messages may still use it`,
        breaking: removalBreaks,
      });
      continue;
    }
    if (!before) {
      changes.push({
        type,
        path: '',
        change: `new type (versions ${versionList(after)})`,
        breaking: false,
      });
      continue;
    }
    const versions = [...new Set([...Object.keys(before), ...Object.keys(after)])]
      .map(Number)
      .sort((a, b) => a - b);
    for (const version of versions) {
      const was = before[String(version)];
      const is = after[String(version)];
      if (was && !is) {
        changes.push({
          type,
          version,
          path: '',
          change: `version ${version} removed: producers or stored messages may still use it`,
          breaking: removalBreaks,
        });
      } else if (was && is) {
        changes.push(...publishedVersionChanges(type, version, was, is));
      } else if (is) {
        const below = versions.filter((v) => v < version);
        const previousVersion = below[below.length - 1];
        if (previousVersion === undefined) {
          changes.push({
            type,
            version,
            path: '',
            change: `new version ${version} (no earlier version to compare with)`,
            breaking: false,
          });
          continue;
        }
        const previous = after[String(previousVersion)] ?? before[String(previousVersion)]!;
        changes.push(...newVersionChanges(type, version, previousVersion, previous, is));
      }
    }
  }
  return { compatible: changes.every((c) => !c.breaking), changes };
}

function publishedVersionChanges(
  type: string,
  version: number,
  was: SnapshotVersion,
  is: SnapshotVersion,
): ContractChange[] {
  const changes: ContractChange[] = [];
  for (const which of ['schema', 'reply'] as const) {
    const a = was[which];
    const b = is[which];
    if (sameJson(a, b)) continue;
    const prefix = `version ${version} is published and cannot change (declare version ${version + 1} instead)`;
    if (a === undefined || b === undefined) {
      changes.push({
        type,
        version,
        schema: which,
        path: '',
        change: `${prefix}: ${which} ${a === undefined ? 'added' : 'removed'}`,
        breaking: true,
      });
      continue;
    }
    const found = compareSchemas(a, b, 'none').changes;
    const listed = found.length
      ? found
      : [{ path: '', change: 'changed (only in parts no $ref reaches)' }];
    for (const c of listed)
      changes.push({
        type,
        version,
        schema: which,
        path: c.path,
        change: `${prefix}: ${c.change}`,
        breaking: true,
      });
  }
  if (was.compatibility !== is.compatibility)
    changes.push({
      type,
      version,
      path: '',
      change: `compatibility mode ${was.compatibility} → ${is.compatibility}`,
      breaking: false,
    });
  return changes;
}

function newVersionChanges(
  type: string,
  version: number,
  previousVersion: number,
  previous: SnapshotVersion,
  next: SnapshotVersion,
): ContractChange[] {
  const mode = next.compatibility;
  const changes: ContractChange[] = [
    {
      type,
      version,
      path: '',
      change: `new version ${version}, checked against version ${previousVersion} (${mode})`,
      breaking: false,
    },
  ];
  for (const which of ['schema', 'reply'] as const) {
    const a = previous[which];
    const b = next[which];
    if (a === undefined && b === undefined) continue;
    // A payload upcast from the previous version: old messages reach consumers in the new shape,
    // so only the forward direction is left to check (`full`), or nothing (`backward`).
    const covered = which === 'schema' && next.upcast === true;
    const effective: CompatibilityMode = !covered
      ? mode
      : mode === 'full'
        ? 'forward'
        : mode === 'backward'
          ? 'none'
          : mode;
    if (covered && effective !== mode)
      changes.push({
        type,
        version,
        schema: which,
        path: '',
        change: `messages of version ${previousVersion} are upcast to version ${version}: ${mode === 'full' ? 'only forward compatibility is checked' : 'changes are not breaking for consumers'}`,
        breaking: false,
      });
    // A reply schema appearing or going away: compare against "anything" (true).
    const result = compareSchemas(a ?? true, b ?? true, effective);
    for (const c of result.changes)
      changes.push({
        type,
        version,
        schema: which,
        path: c.path,
        change: `${c.change} (vs version ${previousVersion})`,
        breaking: c.breaking,
      });
  }
  return changes;
}

function versionList(versions: Readonly<Record<string, SnapshotVersion>>): string {
  return Object.keys(versions).join(', ') || '(none)';
}

/** A copy of a JSON value with every object's keys sorted (canonical order, readable layout). */
function sortedJson(value: JsonSchema): unknown {
  return JSON.parse(canonicalJson(value as JsonValue)) as unknown;
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === undefined || b === undefined) return a === b;
  return canonicalJson(a as JsonValue) === canonicalJson(b as JsonValue);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isSchema(value: unknown): value is JsonSchema {
  return typeof value === 'boolean' || isRecord(value);
}
