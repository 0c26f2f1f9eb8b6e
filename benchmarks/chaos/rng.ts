/**
 * A seeded pseudo-random generator (mulberry32), so that a chaos run's choices (which keys a
 * transaction touches, which relay is killed, the order and jitter of the faults) repeat with
 * `--seed`. Not for anything secret.
 */
export type Random = () => number;

export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** An integer in [0, n). */
export function randomInt(random: Random, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n));
}

/** `ms` spread uniformly by ±`fraction` of itself. */
export function jitter(random: Random, ms: number, fraction = 0.25): number {
  return Math.round(ms * (1 - fraction + 2 * fraction * random()));
}

/** A derived seed for the `index`-th independent stream of a run (producers, fault plan). */
export function subSeed(seed: number, index: number): number {
  return (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(index + 1, 0xc2b2ae35)) >>> 0;
}
