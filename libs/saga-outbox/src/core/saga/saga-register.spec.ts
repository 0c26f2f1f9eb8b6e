import { SagaDefinitionError } from '../errors';
import { InMemorySagaStore, type InMemoryTx } from '../../testing/in-memory-saga-store';
import { defineSaga } from './saga-builder';
import { SagaEngine } from './saga-engine';

const saga = (name: string) =>
  defineSaga<unknown, InMemoryTx>(name)
    .step('only', { compensatable: false, run: () => null })
    .build();

function engine(): SagaEngine<InMemoryTx> {
  return new SagaEngine<InMemoryTx>({ store: new InMemorySagaStore() });
}

describe('SagaEngine.register: a saga name declared twice', () => {
  it('names both declarations and says how to fix it; the first one stays registered', () => {
    const e = engine();
    const first = saga('order-placement');
    e.register(first, { declaredBy: 'OrderPlacementSaga' });
    const again = () => e.register(saga('order-placement'), { declaredBy: 'LegacyOrderSaga' });
    expect(again).toThrow(SagaDefinitionError);
    expect(again).toThrow(
      `Saga "order-placement": declared twice, by OrderPlacementSaga and by LegacyOrderSaga. Saga names must be unique in an application; rename one (@Saga('...') or defineSaga({ name })).`,
    );
    expect(e.definition('order-placement')).toBe(first);
  });

  it('without declaredBy, says where it came from in general terms', () => {
    const e = engine();
    e.register(saga('s'), { declaredBy: 'OrderPlacementSaga' });
    expect(() => e.register(saga('s'))).toThrow(
      'Saga "s": declared twice, by OrderPlacementSaga and by a definition passed to register().',
    );
  });

  it('the same declaration twice (a class provided by two modules) says so', () => {
    const e = engine();
    e.register(saga('s'), { declaredBy: 'OrderPlacementSaga' });
    expect(() => e.register(saga('s'), { declaredBy: 'OrderPlacementSaga' })).toThrow(
      'Saga "s": declared twice, both times by OrderPlacementSaga (a @Saga class provided by more than one module, or one definition registered twice). Provide or register it once.',
    );
  });

  it('a name refused for another reason is not taken', () => {
    const e = engine();
    const remote = defineSaga<unknown, InMemoryTx>('r')
      .step('ask', {
        kind: 'remote',
        compensatable: false,
        run: () => ({ destination: 'd', type: 'c', payload: null }),
      })
      .build();
    expect(() => e.register(remote, { declaredBy: 'RemoteSaga' })).toThrow(/reply destination/);
    expect(() => e.register(saga('r'), { declaredBy: 'LocalSaga' })).not.toThrow();
  });
});
