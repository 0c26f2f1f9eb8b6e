import { retryAtStartup, type StartupAttemptFailure } from './startup-retry';

describe('retryAtStartup', () => {
  const giveUp = (f: StartupAttemptFailure) =>
    new Error(`gave up at ${f.attempt}/${f.attempts}${f.permanent ? ' (permanent)' : ''}`);

  it('retries transient failures delayMs apart and returns the first success', async () => {
    const retried: string[] = [];
    const slept: number[] = [];
    let calls = 0;
    const result = await retryAtStartup(
      (attempt) => {
        calls++;
        return attempt < 3 ? Promise.reject(new Error(`down ${attempt}`)) : Promise.resolve('up');
      },
      {
        retries: 5,
        delayMs: 250,
        giveUp,
        onRetry: (f) =>
          retried.push(`${(f.error as Error).message} ${f.attempt}/${f.attempts} ${f.delayMs}`),
        sleep: (ms) => {
          slept.push(ms);
          return Promise.resolve();
        },
      },
    );
    expect(result).toBe('up');
    expect(calls).toBe(3);
    expect(retried).toEqual(['down 1 1/6 250', 'down 2 2/6 250']);
    expect(slept).toEqual([250, 250]);
  });

  it('gives up after retries + 1 attempts with giveUp', async () => {
    let calls = 0;
    await expect(
      retryAtStartup(
        () => {
          calls++;
          return Promise.reject(new Error('down'));
        },
        { retries: 2, delayMs: 0, giveUp, sleep: () => Promise.resolve() },
      ),
    ).rejects.toThrow('gave up at 3/3');
    expect(calls).toBe(3);
  });

  it('gives up at once on a permanent failure, without waiting', async () => {
    const onRetry = jest.fn();
    const sleep = jest.fn(() => Promise.resolve());
    await expect(
      retryAtStartup(() => Promise.reject(new Error('bad password')), {
        retries: 9,
        delayMs: 3000,
        giveUp,
        onRetry,
        sleep,
        isPermanent: (e) => (e as Error).message === 'bad password',
      }),
    ).rejects.toThrow('gave up at 1/10 (permanent)');
    expect(onRetry).not.toHaveBeenCalled();
    expect(sleep).not.toHaveBeenCalled();
  });

  it('retries: 0 makes one attempt', async () => {
    await expect(
      retryAtStartup(() => Promise.reject(new Error('down')), { retries: 0, delayMs: 10, giveUp }),
    ).rejects.toThrow('gave up at 1/1');
  });
});
