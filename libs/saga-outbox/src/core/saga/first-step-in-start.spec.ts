import { SagaDefinitionError } from '../errors';
import { InMemorySagaStore } from '../../testing';
import { SagaEngine } from './saga-engine';
import { buildSagaDefinition, type SagaSpec, type StepSpec } from './saga-definition';

const run = (): Promise<void> => Promise.resolve();
const step = (name: string, options: Partial<StepSpec> = {}): StepSpec => ({
  name,
  run,
  compensate: run,
  ...options,
});

function refusal(spec: SagaSpec): string {
  try {
    buildSagaDefinition(spec);
  } catch (error) {
    expect(error).toBeInstanceOf(SagaDefinitionError);
    return (error as Error).message;
  }
  throw new Error('expected buildSagaDefinition to throw a SagaDefinitionError');
}

describe('SagaOptions.firstStepInStart', () => {
  it('is off by default and on when asked for, without changing the version', () => {
    const steps = [step('a'), step('b', { dependsOn: ['a'] })];
    const off = buildSagaDefinition({ name: 's', steps });
    const on = buildSagaDefinition({ name: 's', steps, firstStepInStart: true });
    expect(off.firstStepInStart).toBe(false);
    expect(on.firstStepInStart).toBe(true);
    expect(on.version).toBe(off.version);
  });

  it('needs exactly one first step', () => {
    expect(refusal({ name: 's', firstStepInStart: true, steps: [step('a'), step('b')] })).toBe(
      'Saga "s": firstStepInStart needs exactly one step without dependsOn, found 2 (a, b); make the others depend on one first step, or drop firstStepInStart',
    );
  });

  it('needs a local first step', () => {
    expect(
      refusal({
        name: 's',
        firstStepInStart: true,
        steps: [step('a', { kind: 'remote' }), step('b', { dependsOn: ['a'] })],
      }),
    ).toBe(
      'Saga "s", step "a": firstStepInStart needs a local first step (a remote step waits for its reply anyway); drop firstStepInStart or put a local step first',
    );
  });

  it('must be a boolean', () => {
    expect(
      refusal({ name: 's', firstStepInStart: 'yes' as unknown as boolean, steps: [step('a')] }),
    ).toBe('Saga "s": firstStepInStart must be true or false');
  });

  it('on a store without createWithFirstStep, the saga starts as usual', async () => {
    const engine = new SagaEngine({ store: new InMemorySagaStore(), random: () => 0 });
    const seen: string[] = [];
    engine.register(
      buildSagaDefinition({
        name: 's',
        firstStepInStart: true,
        steps: [
          step('a', { run: () => Promise.resolve(void seen.push('a')) }),
          step('b', { dependsOn: ['a'], run: () => Promise.resolve(void seen.push('b')) }),
        ],
      }),
    );
    const { sagaId } = await engine.start('s', {});
    expect((await engine.waitFor(sagaId, { timeoutMs: 5_000 })).status).toBe('completed');
    expect(seen).toEqual(['a', 'b']);
    await engine.shutdown();
  });
});
