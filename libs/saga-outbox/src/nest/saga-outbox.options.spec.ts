import { InvalidOptionsError } from '../core/errors';
import { validateModuleOptions } from './saga-outbox.options';

function rejection(options: unknown): InvalidOptionsError {
  try {
    validateModuleOptions(options as never);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionsError);
    return error as InvalidOptionsError;
  }
  throw new Error('expected InvalidOptionsError');
}

describe('validateModuleOptions: saga options', () => {
  it("saga.idempotencyConflict: 'reject' or 'return-existing'", () => {
    for (const idempotencyConflict of [undefined, 'reject', 'return-existing'] as const)
      expect(() => validateModuleOptions({ saga: { idempotencyConflict } })).not.toThrow();
    const error = rejection({ saga: { idempotencyConflict: 'first-wins' } });
    expect(error.option).toBe('saga.idempotencyConflict');
    expect(error.message).toContain('must be one of "reject", "return-existing", got "first-wins"');
  });

  it.each([
    ['saga.replyTo', { saga: { replyTo: 'replies\u0000' } }],
    ['saga.replyConsumer', { saga: { replyConsumer: 'c\ud800' } }],
    ['sagaEvents', { sagaEvents: { destination: '\udc00events' } }],
  ])('%s that PostgreSQL cannot store is refused at the boundary', (option, options) => {
    const error = rejection(options);
    expect(error.option).toBe(option);
    expect(error.message).toContain('PostgreSQL cannot store it as given');
  });
});
