import { SagaDefinitionError } from '../errors';
import { defineSaga } from './saga-builder';
import { buildSagaDefinition, type SagaSpec, type StepSpec } from './saga-definition';

const noop = (): void => undefined;

/** A step with a compensation unless told otherwise. */
function step(name: string, extra: Partial<StepSpec> = {}): StepSpec {
  return { name, run: noop, compensate: noop, ...extra };
}

function saga(steps: StepSpec[], extra: Partial<SagaSpec> = {}): SagaSpec {
  return { name: 'order-placement', steps, ...extra };
}

function definitionError(spec: SagaSpec): SagaDefinitionError {
  try {
    buildSagaDefinition(spec);
  } catch (error) {
    expect(error).toBeInstanceOf(SagaDefinitionError);
    return error as SagaDefinitionError;
  }
  throw new Error('expected buildSagaDefinition to throw a SagaDefinitionError');
}

describe('saga definition validation', () => {
  it('rejects a dependency cycle, naming the saga and a step on the cycle', () => {
    const err = definitionError(
      saga([
        step('a', { dependsOn: ['c'] }),
        step('b', { dependsOn: ['a'] }),
        step('c', { dependsOn: ['b'] }),
      ]),
    );
    expect(err.code).toBe('SAGA_DEFINITION_INVALID');
    expect(err.sagaName).toBe('order-placement');
    expect(['a', 'b', 'c']).toContain(err.stepName);
    expect(err.message).toContain('"order-placement"');
    expect(err.message).toContain(`step "${err.stepName}"`);
    expect(err.message).toMatch(/cycle/);
  });

  it('names a step that is ON the cycle, not one merely downstream of it', () => {
    // "report" is declared first and depends on the cycle a <-> b without being part of it.
    const err = definitionError(
      saga([
        step('report', { dependsOn: ['a'] }),
        step('a', { dependsOn: ['b'] }),
        step('b', { dependsOn: ['a'] }),
        step('free'),
      ]),
    );
    expect(['a', 'b']).toContain(err.stepName);
    const cyclePart = err.message.slice(err.message.indexOf('cycle'));
    expect(cyclePart).not.toContain('"report"');
    expect(cyclePart).not.toContain('"free"');
  });

  it('rejects a two-step cycle and a self-dependency', () => {
    expect(
      definitionError(saga([step('a', { dependsOn: ['b'] }), step('b', { dependsOn: ['a'] })]))
        .message,
    ).toMatch(/cycle/);
    const self = definitionError(saga([step('a'), step('b', { dependsOn: ['b'] })]));
    expect(self.stepName).toBe('b');
    expect(self.message).toContain('step "b"');
  });

  it('rejects an unknown dependency, naming the step and the missing dependency', () => {
    const err = definitionError(saga([step('a'), step('b', { dependsOn: ['a', 'ghost'] })]));
    expect(err.stepName).toBe('b');
    expect(err.message).toContain('"order-placement"');
    expect(err.message).toContain('step "b"');
    expect(err.message).toContain('"ghost"');
  });

  it('rejects a duplicate step name', () => {
    const err = definitionError(saga([step('a'), step('b'), step('a')]));
    expect(err.stepName).toBe('a');
    expect(err.message).toMatch(/duplicate/);
    expect(err.message).toContain('"order-placement"');
  });

  it('rejects a compensatable step without a compensation, and says how to fix it', () => {
    const err = definitionError(saga([step('a'), step('charge', { compensate: undefined })]));
    expect(err.stepName).toBe('charge');
    expect(err.message).toContain('step "charge"');
    expect(err.message).toContain('@Compensate("charge")');
    expect(err.message).toContain('compensatable: false');
  });

  it('accepts a step marked compensatable: false without a compensation', () => {
    const def = buildSagaDefinition(
      saga([step('check', { compensate: undefined, compensatable: false })]),
    );
    expect(def.steps.get('check')!.compensatable).toBe(false);
  });

  it('rejects a pivot with a compensation', () => {
    const err = definitionError(saga([step('a'), step('ship', { dependsOn: ['a'], pivot: true })]));
    expect(err.stepName).toBe('ship');
    expect(err.message).toMatch(/pivot/);
    expect(err.message).toContain('"order-placement"');
  });

  it('needs no compensation for a pivot or any step after it (transitively)', () => {
    const def = buildSagaDefinition(
      saga([
        step('reserve'),
        step('ship', { dependsOn: ['reserve'], pivot: true, compensate: undefined }),
        step('email', { dependsOn: ['ship'], compensate: undefined }),
        step('archive', { dependsOn: ['email'], compensate: undefined }),
        step('parallel', { compensate: noop }),
      ]),
    );
    const s = (n: string) => def.steps.get(n)!;
    expect(s('reserve')).toMatchObject({ compensatable: true, afterPivot: false, pivot: false });
    expect(s('ship')).toMatchObject({ compensatable: false, afterPivot: false, pivot: true });
    expect(s('email')).toMatchObject({ compensatable: false, afterPivot: true });
    expect(s('archive')).toMatchObject({ compensatable: false, afterPivot: true });
    expect(s('parallel')).toMatchObject({ compensatable: true, afterPivot: false });
  });

  it('still demands a compensation from a step that runs beside (not after) the pivot', () => {
    const err = definitionError(
      saga([
        step('ship', { pivot: true, compensate: undefined }),
        step('side', { compensate: undefined }),
      ]),
    );
    expect(err.stepName).toBe('side');
  });

  it('rejects bad names, an empty saga, a step without an action, bad timeouts and bad saga options', () => {
    expect(definitionError({ name: 'bad name!', steps: [step('a')] }).message).toMatch(
      /saga names/,
    );
    expect(definitionError(saga([])).message).toMatch(/at least one step/);
    expect(definitionError(saga([step('has space')])).stepName).toBe('has space');
    expect(definitionError(saga([{ name: 'a', run: undefined as never }])).message).toMatch(
      /no action/,
    );
    for (const timeoutMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(definitionError(saga([step('a', { timeoutMs })])).stepName).toBe('a');
      expect(definitionError(saga([step('a')], { timeoutMs })).message).toMatch(/timeoutMs/);
    }
    expect(
      definitionError(saga([step('a')], { failureStrategy: 'YOLO' as never })).message,
    ).toMatch(/failureStrategy/);
    expect(definitionError(saga([step('a')], { graceMs: -1 })).message).toMatch(/graceMs/);
    expect(definitionError(saga([step('a')], { afterPivotMaxAttempts: 0 })).message).toMatch(
      /afterPivotMaxAttempts/,
    );
    expect(definitionError(saga([step('a')], { afterPivotMaxAttempts: 1.5 })).message).toMatch(
      /afterPivotMaxAttempts/,
    );
  });

  it('turns an invalid retry policy into a SagaDefinitionError naming saga, step and option', () => {
    const err = definitionError(saga([step('a', { retry: { maxAttempts: 0 } })]));
    expect(err.stepName).toBe('a');
    expect(err.message).toContain('maxAttempts');
    const comp = definitionError(saga([step('a', { compensationRetry: { multiplier: 0.5 } })]));
    expect(comp.message).toContain('compensationRetry.multiplier');
  });

  it('fills in defaults and lets explicit undefined options fall back to them', () => {
    const def = buildSagaDefinition(
      saga([step('a', { retry: { maxAttempts: undefined, initialDelayMs: 7 } })]),
    );
    expect(def.failureStrategy).toBe('FAIL_FAST');
    expect(def.graceMs).toBe(5_000);
    expect(def.timeoutMs).toBeNull();
    expect(def.afterPivotMaxAttempts).toBe(20);
    const a = def.steps.get('a')!;
    expect(a.retry.maxAttempts).toBe(3);
    expect(a.retry.initialDelayMs).toBe(7);
    expect(a.compensationRetry.maxAttempts).toBe(10);
    expect(a.timeoutMs).toBeNull();
  });
});

describe('saga definition order and version', () => {
  const diamond = (order: string[], extra: Record<string, Partial<StepSpec>> = {}): SagaSpec => {
    const all: Record<string, StepSpec> = {
      a: step('a'),
      b: step('b', { dependsOn: ['a'] }),
      c: step('c', { dependsOn: ['a'] }),
      d: step('d', { dependsOn: ['b', 'c'] }),
    };
    return saga(order.map((n) => ({ ...all[n]!, ...extra[n] })));
  };

  it('orders steps topologically, dependencies first', () => {
    const def = buildSagaDefinition(diamond(['d', 'c', 'b', 'a']));
    const pos = (n: string) => def.order.indexOf(n);
    expect([...def.order].sort()).toEqual(['a', 'b', 'c', 'd']);
    expect(pos('a')).toBeLessThan(pos('b'));
    expect(pos('a')).toBeLessThan(pos('c'));
    expect(pos('b')).toBeLessThan(pos('d'));
    expect(pos('c')).toBeLessThan(pos('d'));
  });

  it('has a version that does not depend on declaration order or dependsOn order', () => {
    const v1 = buildSagaDefinition(diamond(['a', 'b', 'c', 'd'])).version;
    const v2 = buildSagaDefinition(diamond(['d', 'c', 'b', 'a'])).version;
    const v3 = buildSagaDefinition(
      diamond(['c', 'a', 'd', 'b'], { d: { dependsOn: ['c', 'b'] } }),
    ).version;
    expect(v1).toMatch(/^[0-9a-f]{16}$/);
    expect(v2).toBe(v1);
    expect(v3).toBe(v1);
  });

  it('has a version that ignores retry / timeout tuning and function identity', () => {
    const base = buildSagaDefinition(diamond(['a', 'b', 'c', 'd'])).version;
    const tuned = buildSagaDefinition(
      diamond(['a', 'b', 'c', 'd'], {
        b: { retry: { maxAttempts: 9 }, timeoutMs: 50, run: () => 1, compensate: () => 2 },
      }),
    ).version;
    expect(tuned).toBe(base);
  });

  it('treats a repeated dependency as the same graph (same version)', () => {
    const base = buildSagaDefinition(diamond(['a', 'b', 'c', 'd'])).version;
    const repeated = buildSagaDefinition(
      diamond(['a', 'b', 'c', 'd'], { d: { dependsOn: ['b', 'c', 'b'] } }),
    ).version;
    expect(repeated).toBe(base);
  });

  it('changes the version when the graph changes', () => {
    const base = buildSagaDefinition(diamond(['a', 'b', 'c', 'd'])).version;
    const variants: SagaSpec[] = [
      diamond(['a', 'b', 'c', 'd'], { d: { dependsOn: ['b'] } }), // edge removed
      diamond(['a', 'b', 'c', 'd'], { c: { dependsOn: ['a', 'b'] } }), // edge added
      diamond(['a', 'b', 'c', 'd'], { d: { pivot: true, compensate: undefined } }), // pivot
      diamond(['a', 'b', 'c', 'd'], { c: { compensatable: false, compensate: undefined } }),
      saga([...diamond(['a', 'b', 'c', 'd']).steps, step('e', { dependsOn: ['d'] })]), // step added
      saga(
        diamond(['a', 'b', 'c', 'd'])
          .steps.map((s) => (s.name === 'c' ? { ...s, name: 'c2' } : s))
          .map((s) => (s.name === 'd' ? { ...s, dependsOn: ['b', 'c2'] } : s)),
      ), // renamed
    ];
    const versions = variants.map((v) => buildSagaDefinition(v).version);
    for (const v of versions) expect(v).not.toBe(base);
    expect(new Set(versions).size).toBe(versions.length);
  });

  it('builder and plain spec produce the same definition', () => {
    const run = (): number => 1;
    const built = defineSaga('order-placement', { failureStrategy: 'WAIT_ALL', graceMs: 10 })
      .step('a', { run, compensate: noop })
      .step('b', { dependsOn: ['a'], run, pivot: true })
      .build();
    const plain = buildSagaDefinition(
      saga(
        [
          { name: 'a', run, compensate: noop },
          { name: 'b', dependsOn: ['a'], run, pivot: true },
        ],
        { failureStrategy: 'WAIT_ALL', graceMs: 10 },
      ),
    );
    expect(built.version).toBe(plain.version);
    expect(built.order).toEqual(plain.order);
    expect(built.failureStrategy).toBe('WAIT_ALL');
    expect(built.graceMs).toBe(10);
    expect(built.steps.get('b')!.pivot).toBe(true);
  });

  it('is frozen: the definition, its steps, order and dependency lists cannot be changed', () => {
    const def = buildSagaDefinition(diamond(['a', 'b', 'c', 'd']));
    expect(Object.isFrozen(def)).toBe(true);
    expect(Object.isFrozen(def.order)).toBe(true);
    expect(Object.isFrozen(def.steps.get('d'))).toBe(true);
    expect(Object.isFrozen(def.steps.get('d')!.dependsOn)).toBe(true);
    expect(Object.isFrozen(def.steps.get('d')!.retry)).toBe(true);
  });

  it('does not alias the caller spec: mutating the spec afterwards changes nothing', () => {
    const deps = ['a'];
    const spec = saga([step('a'), step('b', { dependsOn: deps })]);
    const def = buildSagaDefinition(spec);
    const version = def.version;
    deps.push('zzz');
    expect(def.steps.get('b')!.dependsOn).toEqual(['a']);
    expect(buildSagaDefinition(saga([step('a'), step('b', { dependsOn: ['a'] })])).version).toBe(
      version,
    );
  });
});
