import { createHash } from 'node:crypto';
import { InvalidOptionsError, SagaDefinitionError } from '../errors';
import type { JsonValue } from '../json';
import type { OutboxMessageInput } from '../outbox/outbox-message';
import type { StepPhase } from '../ports/saga-store';
import {
  DEFAULT_COMPENSATION_RETRY,
  DEFAULT_STEP_RETRY,
  resolveRetryPolicy,
  type RetryPolicy,
  type RetryPolicyInput,
} from './retry-policy';

/** What to do with running sibling steps when one step fails for good. */
export type FailureStrategy = 'FAIL_FAST' | 'WAIT_ALL' | 'FAIL_FAST_WITH_GRACE';
export const FAILURE_STRATEGIES: readonly FailureStrategy[] = [
  'FAIL_FAST',
  'WAIT_ALL',
  'FAIL_FAST_WITH_GRACE',
];

/** What a step body receives. `manager` is the step's own transaction (a TypeORM EntityManager on PostgreSQL). */
export interface StepContext<TInput = unknown, Tx = unknown> {
  readonly sagaId: string;
  readonly sagaName: string;
  readonly stepName: string;
  readonly input: TInput;
  /** Results of the steps completed so far, by step name. */
  readonly results: Readonly<Record<string, JsonValue>>;
  /** Stable across retries and crashes: `sagaId:stepName`. Send it with anything a step calls. */
  readonly idempotencyKey: string;
  /** 1-based attempt number of this phase. */
  readonly attempt: number;
  /** Aborted on step timeout, saga timeout, fail-fast of a sibling, lease loss or shutdown. */
  readonly signal: AbortSignal;
  /** The transaction the step's writes, its result and its status change commit in. */
  readonly manager: Tx;
  /**
   * Writes messages to the outbox in this step's transaction: they exist if and only if the step
   * commits. Defaults: `sagaId` = this saga, `key` = the saga id (so a saga's messages stay in
   * order); headers `sage-saga-id`, `sage-step` and `sage-idempotency-key` are added.
   */
  emit(messages: SagaMessage | readonly SagaMessage[]): Promise<string[]>;
}

/** A message a step emits; see OutboxMessageInput. */
export type SagaMessage = Omit<OutboxMessageInput, 'sagaId'>;

export interface CompensationContext<TInput = unknown, Tx = unknown> extends StepContext<
  TInput,
  Tx
> {
  /** What the step returned when it completed. */
  readonly result: JsonValue;
  /** Why the saga is compensating. */
  readonly reason: string;
  /**
   * This compensation's own key, stable across its retries and crashes:
   * `sagaId:stepName:compensate`. Send it with anything the compensation calls.
   */
  readonly idempotencyKey: string;
  /**
   * The key the step's forward action was given as `ctx.idempotencyKey` (`sagaId:stepName`), and
   * that its remote command carried: what the forward call did is known by it, so pass it to name
   * what to undo (e.g. refund the charge made under it) instead of rebuilding it.
   */
  readonly forwardIdempotencyKey: string;
}

/**
 * The idempotency key of a step phase: `sagaId:stepName` forward (StepContext.idempotencyKey),
 * `sagaId:stepName:compensate` for its compensation. Stable across retries, resends and crashes.
 */
export function stepIdempotencyKey(sagaId: string, step: string, phase: StepPhase): string {
  return phase === 'forward' ? `${sagaId}:${step}` : `${sagaId}:${step}:compensate`;
}

/** May return a value (or a promise of one): the step's stored result. */
export type StepBody<TInput, Tx> = (ctx: StepContext<TInput, Tx>) => unknown;
export type CompensationBody<TInput, Tx> = (ctx: CompensationContext<TInput, Tx>) => unknown;

/** `local`: runs in its own transaction. `remote`: sends a command and parks the saga until the reply. */
export type StepKind = 'local' | 'remote';

/** Reply timeout of a remote step attempt when the step sets no `timeoutMs`. */
export const DEFAULT_REMOTE_STEP_TIMEOUT_MS = 60_000;

export interface StepOptions {
  /**
   * `remote`: the action returns a SagaCommand (`{ destination, type, payload }`); Sage writes it to
   * the outbox in the step's transaction (with any writes the action made through `ctx.manager`)
   * and parks the saga (`waiting`) until the participant's reply resumes it; the reply's result is
   * the step's result. `timeoutMs` is then the reply timeout of each attempt (default 60 s): on
   * timeout the command is sent again (same idempotency key) up to `retry.maxAttempts`, after which
   * the step is `timed_out` and compensated. A remote step's compensation may return a command too
   * (awaited the same way) or nothing (done locally). Default `local`.
   */
  kind?: StepKind;
  /** Steps that must complete before this one starts. Steps with no path between them run concurrently. */
  dependsOn?: readonly string[];
  /** Retry policy of the forward action. */
  retry?: RetryPolicyInput;
  /** Retry policy of the compensation. */
  compensationRetry?: RetryPolicyInput;
  /** Per-attempt timeout in ms, delivered as an aborted `ctx.signal`. */
  timeoutMs?: number;
  /**
   * The point of no return. Once a pivot completes, the saga no longer compensates: failing steps
   * are retried forward (up to the saga's `afterPivotMaxAttempts`) and then park the saga as `failed`.
   */
  pivot?: boolean;
  /**
   * `false` for steps with nothing to undo (reads, validations). Steps after a pivot and pivots
   * themselves never need a compensation. Every other step must have one.
   */
  compensatable?: boolean;
}

export interface SagaOptions<TInput = unknown> {
  failureStrategy?: FailureStrategy;
  /** FAIL_FAST_WITH_GRACE: how long running siblings may finish before they are aborted. */
  graceMs?: number;
  /** Whole-saga timeout in ms, counted from start on the database clock. */
  timeoutMs?: number;
  /** Attempts for a step that fails after a pivot completed (retried forward, never compensated). */
  afterPivotMaxAttempts?: number;
  /**
   * Opt-in, default false. `start()` runs the first step's first attempt in the transaction that
   * stores the saga, so a saga of N local steps commits N times instead of N + 1. `start()` then
   * resolves only once that attempt has run (its body included). Needs exactly one step without
   * `dependsOn`, and it must be local. If the attempt fails, nothing of it is kept: the saga is
   * stored on its own and the failure counts as the step's attempt 1 (retried per its policy). Not
   * used for a start in the caller's transaction (`manager`), nor when the engine is at
   * `maxConcurrent` (the saga is then started as usual).
   */
  firstStepInStart?: boolean;
  /**
   * Checked before anything is written. Throw, or return `false` or a message, to reject the input.
   */
  validate?: (input: TInput) => boolean | string | void;
}

export interface StepSpec<TInput = unknown, Tx = unknown> extends StepOptions {
  name: string;
  run: StepBody<TInput, Tx>;
  compensate?: CompensationBody<TInput, Tx>;
}

export interface SagaSpec<TInput = unknown, Tx = unknown> extends SagaOptions<TInput> {
  name: string;
  steps: readonly StepSpec<TInput, Tx>[];
}

export interface StepDefinition<TInput = unknown, Tx = unknown> {
  readonly name: string;
  readonly kind: StepKind;
  readonly dependsOn: readonly string[];
  readonly pivot: boolean;
  /** True when a failure before the pivot must undo this step. */
  readonly compensatable: boolean;
  /** True when some pivot is an ancestor: failures here are retried forward. */
  readonly afterPivot: boolean;
  readonly retry: RetryPolicy;
  readonly compensationRetry: RetryPolicy;
  readonly timeoutMs: number | null;
  readonly run: StepBody<TInput, Tx>;
  readonly compensate: CompensationBody<TInput, Tx> | undefined;
}

/** An immutable, validated saga graph. Decorators and the builder both produce one. */
export interface SagaDefinition<TInput = unknown, Tx = unknown> {
  readonly name: string;
  /** Hash of the step graph; instances finish on the version they started on. */
  readonly version: string;
  readonly steps: ReadonlyMap<string, StepDefinition<TInput, Tx>>;
  /** A topological order of the steps (dependencies first), stable for a given graph. */
  readonly order: readonly string[];
  readonly failureStrategy: FailureStrategy;
  readonly graceMs: number;
  readonly timeoutMs: number | null;
  readonly afterPivotMaxAttempts: number;
  /** SagaOptions.firstStepInStart: the first (only root, local) step runs in start()'s transaction. */
  readonly firstStepInStart: boolean;
  readonly validate: ((input: TInput) => boolean | string | void) | undefined;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Validates a saga spec and freezes it into a definition. Throws SagaDefinitionError naming saga and step. */
export function buildSagaDefinition<TInput, Tx>(
  spec: SagaSpec<TInput, Tx>,
): SagaDefinition<TInput, Tx> {
  const sagaName = spec.name;
  if (typeof sagaName !== 'string' || !NAME.test(sagaName)) {
    throw new SagaDefinitionError(
      String(sagaName),
      undefined,
      'saga names are 1-128 characters of letters, digits, ".", "_", ":" or "-"',
    );
  }
  if (!spec.steps.length)
    throw new SagaDefinitionError(sagaName, undefined, 'a saga needs at least one step');

  const byName = new Map<string, StepSpec<TInput, Tx>>();
  for (const step of spec.steps) {
    if (typeof step.name !== 'string' || !NAME.test(step.name)) {
      throw new SagaDefinitionError(
        sagaName,
        String(step.name),
        'step names are 1-128 characters of letters, digits, ".", "_", ":" or "-"',
      );
    }
    if (byName.has(step.name))
      throw new SagaDefinitionError(sagaName, step.name, 'duplicate step name');
    if (typeof step.run !== 'function')
      throw new SagaDefinitionError(sagaName, step.name, 'the step has no action to run');
    byName.set(step.name, step);
  }
  for (const step of spec.steps) {
    for (const dep of step.dependsOn ?? []) {
      if (!byName.has(dep)) {
        throw new SagaDefinitionError(
          sagaName,
          step.name,
          `depends on unknown step "${dep}" (known: ${[...byName.keys()].join(', ')})`,
        );
      }
      if (dep === step.name)
        throw new SagaDefinitionError(sagaName, step.name, 'depends on itself');
    }
  }
  const order = topologicalOrder(sagaName, spec.steps);

  // afterPivot: a pivot is a strict ancestor.
  const afterPivot = new Map<string, boolean>();
  for (const name of order) {
    const s = byName.get(name)!;
    afterPivot.set(
      name,
      (s.dependsOn ?? []).some((d) => byName.get(d)!.pivot === true || afterPivot.get(d) === true),
    );
  }

  const steps = new Map<string, StepDefinition<TInput, Tx>>();
  for (const name of order) {
    const s = byName.get(name)!;
    const pivot = s.pivot === true;
    const isAfterPivot = afterPivot.get(name)!;
    if (pivot && s.compensate) {
      throw new SagaDefinitionError(
        sagaName,
        name,
        'a pivot step is the point of no return and cannot have a compensation',
      );
    }
    const compensatable = !pivot && !isAfterPivot && s.compensatable !== false;
    if (compensatable && !s.compensate) {
      throw new SagaDefinitionError(
        sagaName,
        name,
        'the step is compensatable but has no compensation: add @Compensate("' +
          name +
          '") (or .compensate in the builder), or mark it { compensatable: false } if it has nothing to undo',
      );
    }
    if (s.timeoutMs !== undefined && (!Number.isFinite(s.timeoutMs) || s.timeoutMs <= 0)) {
      throw new SagaDefinitionError(
        sagaName,
        name,
        `timeoutMs must be a positive number, got ${String(s.timeoutMs)}`,
      );
    }
    const kind = s.kind ?? 'local';
    if (kind !== 'local' && kind !== 'remote') {
      throw new SagaDefinitionError(
        sagaName,
        name,
        `kind must be "local" or "remote", got ${JSON.stringify(kind)}`,
      );
    }
    const where = `saga "${sagaName}" step "${name}"`;
    steps.set(
      name,
      Object.freeze({
        name,
        kind,
        // Deduplicated: a repeated dependency is the same graph (and the same version).
        dependsOn: Object.freeze([...new Set(s.dependsOn ?? [])]),
        pivot,
        compensatable,
        afterPivot: isAfterPivot,
        retry: wrapDefinitionError(sagaName, name, () =>
          resolveRetryPolicy(s.retry, DEFAULT_STEP_RETRY, `${where} retry`),
        ),
        compensationRetry: wrapDefinitionError(sagaName, name, () =>
          resolveRetryPolicy(
            s.compensationRetry,
            DEFAULT_COMPENSATION_RETRY,
            `${where} compensationRetry`,
          ),
        ),
        timeoutMs: s.timeoutMs ?? (kind === 'remote' ? DEFAULT_REMOTE_STEP_TIMEOUT_MS : null),
        run: s.run,
        compensate: s.compensate,
      }),
    );
  }

  const failureStrategy = spec.failureStrategy ?? 'FAIL_FAST';
  if (!FAILURE_STRATEGIES.includes(failureStrategy)) {
    throw new SagaDefinitionError(
      sagaName,
      undefined,
      `failureStrategy must be one of ${FAILURE_STRATEGIES.join(', ')}`,
    );
  }
  const graceMs = spec.graceMs ?? 5_000;
  if (!Number.isFinite(graceMs) || graceMs < 0)
    throw new SagaDefinitionError(sagaName, undefined, 'graceMs must be >= 0');
  if (spec.timeoutMs !== undefined && (!Number.isFinite(spec.timeoutMs) || spec.timeoutMs <= 0)) {
    throw new SagaDefinitionError(sagaName, undefined, 'timeoutMs must be a positive number');
  }
  const afterPivotMaxAttempts = spec.afterPivotMaxAttempts ?? 20;
  if (!Number.isInteger(afterPivotMaxAttempts) || afterPivotMaxAttempts < 1) {
    throw new SagaDefinitionError(
      sagaName,
      undefined,
      'afterPivotMaxAttempts must be an integer >= 1',
    );
  }

  const firstStepInStart = validFirstStepInStart(sagaName, spec.firstStepInStart, order, steps);

  return Object.freeze({
    name: sagaName,
    version: hashGraph(order.map((n) => steps.get(n)!)),
    steps,
    order: Object.freeze(order),
    failureStrategy,
    graceMs,
    timeoutMs: spec.timeoutMs ?? null,
    afterPivotMaxAttempts,
    firstStepInStart,
    validate: spec.validate,
  });
}

/**
 * SagaOptions.firstStepInStart: only for a saga whose run begins with one local step (a DAG with
 * several roots starts them concurrently; a remote first step waits for a reply anyway).
 */
function validFirstStepInStart(
  sagaName: string,
  value: unknown,
  order: readonly string[],
  steps: ReadonlyMap<string, { readonly kind: StepKind; readonly dependsOn: readonly string[] }>,
): boolean {
  if (value === undefined || value === false) return false;
  if (value !== true)
    throw new SagaDefinitionError(sagaName, undefined, 'firstStepInStart must be true or false');
  const roots = order.filter((n) => steps.get(n)!.dependsOn.length === 0);
  if (roots.length !== 1)
    throw new SagaDefinitionError(
      sagaName,
      undefined,
      `firstStepInStart needs exactly one step without dependsOn, found ${roots.length} (${roots.join(', ')}); make the others depend on one first step, or drop firstStepInStart`,
    );
  const first = roots[0]!;
  if (steps.get(first)!.kind !== 'local')
    throw new SagaDefinitionError(
      sagaName,
      first,
      'firstStepInStart needs a local first step (a remote step waits for its reply anyway); drop firstStepInStart or put a local step first',
    );
  return true;
}

/** Kahn's algorithm; ties broken by declaration order so the order is stable. */
function topologicalOrder(
  sagaName: string,
  steps: readonly StepSpec<unknown, unknown>[] | readonly StepSpec<never, never>[],
): string[] {
  const list = steps as readonly StepSpec<unknown, unknown>[];
  const indegree = new Map(list.map((s) => [s.name, new Set(s.dependsOn ?? []).size]));
  const dependents = new Map<string, string[]>(list.map((s) => [s.name, []]));
  for (const s of list) for (const d of new Set(s.dependsOn ?? [])) dependents.get(d)!.push(s.name);
  const order: string[] = [];
  const ready = list.filter((s) => indegree.get(s.name) === 0).map((s) => s.name);
  while (ready.length) {
    const n = ready.shift()!;
    order.push(n);
    for (const m of dependents.get(n)!) {
      const left = indegree.get(m)! - 1;
      indegree.set(m, left);
      if (left === 0) ready.push(m);
    }
  }
  if (order.length !== list.length) {
    // Steps left over are on a cycle or downstream of one. Every one of them has a left-over
    // dependency, so following those from any of them must revisit a step: that loop is a cycle.
    const stuck = new Set(list.map((s) => s.name).filter((n) => !order.includes(n)));
    const depsOf = new Map(list.map((s) => [s.name, [...new Set(s.dependsOn ?? [])]]));
    const path: string[] = [];
    let current = [...stuck][0]!;
    while (!path.includes(current)) {
      path.push(current);
      current = depsOf.get(current)!.find((d) => stuck.has(d))!;
    }
    const cycle = path.slice(path.indexOf(current));
    throw new SagaDefinitionError(
      sagaName,
      cycle[0],
      `dependency cycle ${[...cycle, cycle[0]].map((n) => `"${n}"`).join(' → ')} (each depends on the next)`,
    );
  }
  return order;
}

/** The version is a hash of what recovery depends on: step names, edges, pivots, compensations. */
function hashGraph(
  steps: readonly StepDefinition<unknown, unknown>[] | readonly StepDefinition<never, never>[],
): string {
  const canonical = (steps as readonly StepDefinition<unknown, unknown>[])
    .map((s) => ({
      n: s.name,
      d: [...s.dependsOn].sort(),
      p: s.pivot,
      c: s.compensatable,
      k: s.compensate !== undefined,
      // Only when remote, so the versions of definitions without remote steps stay as they were.
      ...(s.kind === 'remote' ? { r: 1 } : {}),
    }))
    .sort((a, b) => (a.n < b.n ? -1 : a.n > b.n ? 1 : 0));
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex').slice(0, 16);
}

function wrapDefinitionError<T>(sagaName: string, stepName: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof InvalidOptionsError)
      throw new SagaDefinitionError(sagaName, stepName, e.message);
    throw e;
  }
}
