import { InvalidOptionsError } from '../../core/errors';
import { rabbitMqSettings } from './rabbitmq-settings';

const url = 'amqp://127.0.0.1:5672';

describe('rabbitMqSettings publishWindow', () => {
  it('has no limit unless set', () => {
    expect(rabbitMqSettings({ url }).publishWindow).toBe(Infinity);
    expect(rabbitMqSettings({ url, publishWindow: 64 }).publishWindow).toBe(64);
  });

  it.each([0, -1, 2.5])('rejects %p naming the option', (publishWindow) => {
    expect(() => rabbitMqSettings({ url, publishWindow })).toThrow(
      new InvalidOptionsError('publishWindow', `must be an integer >= 1, got ${publishWindow}`),
    );
  });
});
