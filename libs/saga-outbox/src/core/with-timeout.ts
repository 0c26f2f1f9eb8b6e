/**
 * `work`, or a rejection with `onTimeout()` once `timeoutMs` passed, whichever comes first. The
 * timer is cleared as soon as either settles; `work` is not cancelled (and its late rejection is
 * handled).
 */
export async function withTimeout<T>(
  work: Promise<T>,
  timeoutMs: number,
  onTimeout: () => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
