/**
 * How long to wait before the next poll. Pure, so the schedule can be tested exactly.
 */

export interface BackoffOptions {
  /** Delay while all is well, in ms. */
  baseMs: number;
  /** Each consecutive failure multiplies the delay by this. */
  factor: number;
  /** The delay never grows beyond this, in ms. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 2000, factor: 2, maxMs: 60000 };

/**
 * The delay after `failures` consecutive failed polls: the base delay while healthy, then
 * doubling (with the default factor) up to the cap, so a broken server is not hammered
 * but a recovered one is noticed within a minute.
 */
export function nextDelay(failures: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  const base = Math.max(0, options.baseMs);
  if (failures <= 0) {
    return Math.min(base, options.maxMs);
  }
  // Capping the exponent keeps the arithmetic finite for a server down for days.
  const growth = Math.pow(Math.max(1, options.factor), Math.min(failures, 64));
  return Math.min(base * growth, options.maxMs);
}

/** The poll interval that follows the server's own sampling rate, never faster than 1 s. */
export function pollIntervalMs(serverIntervalSeconds: number | null | undefined): number {
  const seconds =
    typeof serverIntervalSeconds === 'number' && serverIntervalSeconds > 0 ? serverIntervalSeconds : 2;
  return Math.round(Math.max(1, seconds) * 1000);
}
