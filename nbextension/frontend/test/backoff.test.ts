import { describe, expect, it } from 'vitest';

import { nextDelay, pollIntervalMs } from '../src/backoff';

const options = { baseMs: 1000, factor: 2, maxMs: 60000 };

describe('backoff schedule', () => {
  it('polls at the base interval while healthy', () => {
    expect(nextDelay(0, options)).toBe(1000);
  });

  it('doubles the wait after each consecutive failure', () => {
    expect([1, 2, 3, 4, 5].map(n => nextDelay(n, options))).toEqual([2000, 4000, 8000, 16000, 32000]);
  });

  it('never waits longer than the cap, even after days of failures', () => {
    expect(nextDelay(6, options)).toBe(60000);
    expect(nextDelay(100000, options)).toBe(60000);
  });
});

describe('poll interval', () => {
  it("follows the server's sampling interval but never polls faster than once a second", () => {
    expect(pollIntervalMs(2.5)).toBe(2500);
    expect(pollIntervalMs(0.2)).toBe(1000);
  });

  it('falls back to two seconds when the server sends no interval', () => {
    expect(pollIntervalMs(undefined)).toBe(2000);
    expect(pollIntervalMs(0)).toBe(2000);
  });
});
