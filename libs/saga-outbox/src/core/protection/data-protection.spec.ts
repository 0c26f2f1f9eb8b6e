import { randomBytes } from 'node:crypto';
import { InMemorySagaStore, type InMemoryTx } from '../../testing/in-memory-saga-store';
import { InMemorySubjectKeyStore } from '../../testing/in-memory-subject-key-store';
import { InvalidOptionsError } from '../errors';
import { defineSaga } from '../saga/saga-builder';
import { SagaEngine } from '../saga/saga-engine';
import { createDataProtection } from './data-protection';
import { ENCRYPTED_HEADER } from './data-protector';
import { encryptionKeys } from './encryption-keys';

const EMAIL = 'grace@example.test';
const keys = () => encryptionKeys({ active: 'k1', keys: { k1: randomBytes(32) } });

describe('createDataProtection', () => {
  it('refuses a per-subject rule without a subject key store, naming the option', () => {
    const build = () =>
      createDataProtection({
        keys: keys(),
        messages: { 'order.placed': { subject: 'customerId', fields: ['email'] } },
      });
    expect(build).toThrow(InvalidOptionsError);
    expect(build).toThrow(/dataProtection\.subjectKeys.*PostgresSubjectKeyStore/);
  });

  it('checks the options as the module does', () => {
    expect(() => createDataProtection({ keys: keys(), sagas: { order: { input: [] } } })).toThrow(
      /dataProtection\.sagas\["order"\]\.input/,
    );
  });

  it('wraps a saga store: stored input encrypted, the engine sees plaintext', async () => {
    const raw = new InMemorySagaStore();
    const protection = createDataProtection<InMemoryTx>({
      keys: keys(),
      subjectKeys: new InMemorySubjectKeyStore(),
      sagas: { order: { subject: 'customer.id', input: ['customer.email'] } },
    });
    const engine = new SagaEngine<InMemoryTx>({
      store: protection.protectSagaStore(raw),
      shutdownTimeoutMs: 50,
    });
    engine.register(
      defineSaga<{ customer: { id: string; email: string } }, InMemoryTx>('order')
        .step('a', { compensatable: false, run: () => null })
        .build(),
    );
    try {
      const input = { customer: { id: 'c-1', email: EMAIL } };
      const { sagaId } = await engine.start('order', input);
      const done = await engine.waitFor(sagaId, { timeoutMs: 5000 });
      expect(done.input).toEqual(input);
      expect(JSON.stringify((await raw.load(sagaId))!.input)).not.toContain(EMAIL);
    } finally {
      await engine.shutdown();
    }
  });

  it('seals and opens a message with the master key when no subject is declared', async () => {
    const { protector } = createDataProtection({
      keys: keys(),
      messages: { 'order.placed': { fields: ['email'] } },
    });
    const message = {
      id: 'm-1',
      type: 'order.placed',
      payload: { email: EMAIL },
      headers: {} as Record<string, string>,
    };
    const sealed = await protector.sealMessage(message);
    expect(sealed.headers[ENCRYPTED_HEADER]).toBe('v1');
    expect(JSON.stringify(sealed.payload)).not.toContain(EMAIL);
    expect((await protector.openMessage(sealed)).payload).toEqual(message.payload);
  });
});
