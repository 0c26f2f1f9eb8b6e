import { InvalidOptionsError, SagaStoreUnavailableError } from '../errors';
import type { JsonValue } from '../json';
import {
  TERMINAL_SAGA_STATUSES,
  type ActiveVersionCount,
  type AppliedReply,
  type AwaitReply,
  type Fence,
  type NewSaga,
  type ParkOutcome,
  type ReplyTarget,
  type SagaCreateOutcome,
  type SagaRecord,
  type SagaStatus,
  type SagaStore,
  type SagaVersionRef,
  type StepFailure,
  type StepPhase,
  type StepTxOptions,
  type StepTxOutcome,
  type WithinTransaction,
} from '../ports/saga-store';
import { ProtectedLocation, type DataProtector } from './data-protector';
import { SubjectKeyStoreUnavailableError } from './protection-errors';

/** What the store remembers of a saga it has seen: its name, and its input in clear when protected. */
interface KnownSaga {
  name: string;
  /** Undefined for a saga with no data-protection rule (nothing to seal, no subject to read). */
  input: JsonValue | undefined;
}

/** Sagas remembered at most (least recently used forgotten first). */
const DEFAULT_KNOWN_SAGAS = 4096;

/**
 * A SagaStore that encrypts what `dataProtection.sagas` declares before it reaches the real store,
 * and decrypts it on the way back, so the engine and step bodies only ever see plaintext:
 *
 * - `create` seals the saga's input (the engine computed the idempotency fingerprint from the
 *   plaintext before); with the caller's transaction, a new data-subject key commits with it;
 * - `load` / `loadByIdempotencyKey` open the input and every step's result;
 * - `runStepTransaction` seals a forward phase's result inside the step's transaction (subject key
 *   lookups and creation run in it too), `applyReply` a remote step's result in the reply's;
 * - the data subject of a result is read from the saga's input in clear: remembered from `create`
 *   and `load` (a bounded cache), else read in the same transaction (`SagaStore.inputOf`).
 *
 * Unreadable data (a key not held, an erased subject) makes `load` throw DataUnreadableError; the
 * engine then records the saga as `failed` with that reason instead of resuming it (see
 * SagaEngine). A subject key store that cannot be reached while a result is sealed is the store's
 * trouble (SagaStoreUnavailableError): the attempt is not counted and recovery resumes the saga.
 */
export class ProtectingSagaStore<Tx = unknown> implements SagaStore<Tx> {
  private readonly known = new Map<string, KnownSaga>();
  /** Whether any saga declares result fields: without, step transactions pass straight through. */
  private readonly sealsResults: boolean;

  constructor(
    private readonly store: SagaStore<Tx>,
    private readonly protector: DataProtector<Tx>,
    private readonly maxKnown = DEFAULT_KNOWN_SAGAS,
  ) {
    this.sealsResults = [...protector.settings.sagas.values()].some((s) => s.results.size > 0);
    if (this.sealsResults && typeof store.inputOf !== 'function')
      throw new InvalidOptionsError(
        'dataProtection.sagas',
        "declares step results to encrypt, but the saga store does not implement inputOf(tx, sagaId) (needed to read a result's data subject in its transaction); implement it, or drop `results`",
      );
  }

  async create(saga: NewSaga, tx?: Tx, within?: WithinTransaction<Tx>): Promise<SagaCreateOutcome> {
    const input = this.protector.protectsSaga(saga.name)
      ? await this.protector.sealSagaInput(saga.name, saga.id, saga.input, tx)
      : saga.input;
    const outcome = await this.store.create(
      input === saga.input ? saga : { ...saga, input },
      tx,
      within,
    );
    if (outcome.created) this.remember(saga.id, saga.name, saga.input);
    return outcome;
  }

  async load(id: string): Promise<SagaRecord | undefined> {
    const record = await this.store.load(id);
    return record && this.opened(record);
  }

  async loadByIdempotencyKey(
    name: string,
    idempotencyKey: string,
  ): Promise<SagaRecord | undefined> {
    const record = await this.store.loadByIdempotencyKey(name, idempotencyKey);
    return record && this.opened(record);
  }

  async runStepTransaction<T>(
    fence: Fence,
    step: string,
    phase: StepPhase,
    attempt: number,
    body: (tx: Tx) => Promise<{ result: JsonValue; value: T; awaitReply?: AwaitReply }>,
    options: StepTxOptions<Tx> = {},
  ): Promise<StepTxOutcome<T>> {
    const outcome = await this.runSealingResults(fence, step, phase, attempt, body, options);
    // Nothing more is sealed for a saga that ended: its plaintext input is not kept.
    if (outcome.kind === 'done' && outcome.sagaCompleted) this.known.delete(fence.sagaId);
    return outcome;
  }

  private runSealingResults<T>(
    fence: Fence,
    step: string,
    phase: StepPhase,
    attempt: number,
    body: (tx: Tx) => Promise<{ result: JsonValue; value: T; awaitReply?: AwaitReply }>,
    options: StepTxOptions<Tx>,
  ): Promise<StepTxOutcome<T>> {
    // Only a completed forward phase stores a result.
    if (!this.sealsResults || phase !== 'forward') {
      return this.store.runStepTransaction(fence, step, phase, attempt, body, options);
    }
    return this.store.runStepTransaction(
      fence,
      step,
      phase,
      attempt,
      async (tx) => {
        const out = await body(tx);
        if (out.awaitReply || out.result === null) return out;
        try {
          const result = await this.sealResult(tx, fence.sagaId, step, out.result);
          return { ...out, result };
        } catch (error) {
          // The key store is the store's trouble: the saga stops without counting an attempt.
          if (error instanceof SubjectKeyStoreUnavailableError)
            throw new SagaStoreUnavailableError(
              fence.sagaId,
              step,
              phase,
              'sealing the step result',
              error,
            );
          throw error;
        }
      },
      options,
    );
  }

  recordStepFailure(fence: Fence, failure: StepFailure): Promise<void> {
    return this.store.recordStepFailure(fence, failure);
  }

  park(fence: Fence, seenWakeSeq: number): Promise<ParkOutcome> {
    return this.store.park(fence, seenWakeSeq);
  }

  async applyReply(
    tx: Tx,
    reply: {
      sagaId: string;
      step: string;
      phase: StepPhase;
      attempt?: number;
      outcome: { ok: true; result: JsonValue } | { ok: false; error: string };
    },
  ): Promise<AppliedReply | undefined> {
    const { outcome } = reply;
    const applied =
      !this.sealsResults || reply.phase !== 'forward' || !outcome.ok || outcome.result === null
        ? await this.store.applyReply(tx, reply)
        : await this.store.applyReply(tx, {
            ...reply,
            outcome: {
              ok: true,
              result: await this.sealResult(tx, reply.sagaId, reply.step, outcome.result),
            },
          });
    // The reply completed the saga: nothing more is sealed for it, as after its last step.
    if (applied?.sagaCompleted) this.known.delete(reply.sagaId);
    return applied;
  }

  replyTarget(tx: Tx, sagaId: string, step: string): Promise<ReplyTarget | undefined> {
    return this.store.replyTarget(tx, sagaId, step);
  }

  inputOf(tx: Tx, sagaId: string): Promise<{ name: string; input: JsonValue } | undefined> {
    // Checked in the constructor when results are sealed; otherwise nothing asks.
    return this.store.inputOf?.(tx, sagaId) ?? Promise.resolve(undefined);
  }

  async transition(
    fence: Fence,
    from: readonly SagaStatus[],
    to: SagaStatus,
    detail?: { error?: string; failedStep?: string },
    within?: WithinTransaction<Tx>,
  ): Promise<boolean> {
    const moved = await this.store.transition(fence, from, to, detail, within);
    // Nothing more is sealed for a saga that ended: its plaintext input is not kept.
    if (moved && TERMINAL_SAGA_STATUSES.includes(to)) this.known.delete(fence.sagaId);
    return moved;
  }

  renewLeases(owner: string, sagaIds: readonly string[], leaseMs: number): Promise<string[]> {
    return this.store.renewLeases(owner, sagaIds, leaseMs);
  }

  claimOrphans(
    owner: string,
    versions: readonly SagaVersionRef[],
    limit: number,
    leaseMs: number,
  ): Promise<string[]> {
    return this.store.claimOrphans(owner, versions, limit, leaseMs);
  }

  release(owner: string, sagaIds: readonly string[]): Promise<void> {
    return this.store.release(owner, sagaIds);
  }

  activeVersions(): Promise<ActiveVersionCount[]> {
    return this.store.activeVersions();
  }

  // ------------------------------------------------------------------ internals

  /** `record` with its input and step results decrypted (envelopes are opened whatever the rules say now). */
  private async opened(record: SagaRecord): Promise<SagaRecord> {
    const input = await this.protector.open(record.input, ProtectedLocation.sagaInput(record.id));
    const steps = [];
    for (const step of record.steps) {
      const result =
        step.result === null
          ? null
          : await this.protector.open(
              step.result,
              ProtectedLocation.stepResult(record.id, step.name),
            );
      steps.push(result === step.result ? step : { ...step, result });
    }
    if (!TERMINAL_SAGA_STATUSES.includes(record.status))
      this.remember(record.id, record.name, input);
    return { ...record, input, steps };
  }

  /** A step result as stored, sealed in `tx` per the saga's rule (unchanged when it has none). */
  private async sealResult(
    tx: Tx,
    sagaId: string,
    step: string,
    result: JsonValue,
  ): Promise<JsonValue> {
    const known = this.known.get(sagaId) ?? (await this.readKnown(tx, sagaId));
    if (!known || !this.protector.protectsSaga(known.name)) return result;
    const input = known.input;
    return this.protector.sealStepResult(
      known.name,
      sagaId,
      step,
      result,
      // Only a rule with a subject reads the input; it was remembered in clear, or is opened here.
      input !== undefined ? input : () => this.openInput(tx, sagaId),
      tx,
    );
  }

  /** The saga's name (and input in clear, when protected) read in `tx`; undefined when it does not exist. */
  private async readKnown(tx: Tx, sagaId: string): Promise<KnownSaga | undefined> {
    const stored = await this.inputOf(tx, sagaId);
    if (!stored) return undefined;
    // The input stays sealed here: opened only if the rule needs its subject (openInput).
    return this.remember(sagaId, stored.name, undefined);
  }

  private async openInput(tx: Tx, sagaId: string): Promise<JsonValue> {
    const stored = await this.inputOf(tx, sagaId);
    if (!stored) return null;
    const input = await this.protector.open(stored.input, ProtectedLocation.sagaInput(sagaId), tx);
    this.remember(sagaId, stored.name, input);
    return input;
  }

  private remember(sagaId: string, name: string, input: JsonValue | undefined): KnownSaga {
    const entry: KnownSaga = {
      name,
      input: this.protector.protectsSaga(name) ? input : undefined,
    };
    this.known.delete(sagaId);
    this.known.set(sagaId, entry);
    if (this.known.size > this.maxKnown) {
      const oldest = this.known.keys().next();
      if (!oldest.done) this.known.delete(oldest.value);
    }
    return entry;
  }
}
