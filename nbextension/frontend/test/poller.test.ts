import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { Poller } from '../src/poller';
import { FakeVisibility } from './fixtures';

describe('poller', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('polls at once on start, then once per interval', async () => {
    const task = vi.fn(async () => {});
    const poller = new Poller(task, { intervalMs: () => 1000, visibility: new FakeVisibility() });
    poller.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(task).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(3000);
    expect(task).toHaveBeenCalledTimes(4);
    poller.stop();
  });

  it('backs off after failures and returns to the interval after a success', async () => {
    let fail = true;
    const task = vi.fn(async () => {
      if (fail) {
        throw new Error('down');
      }
    });
    const delays: number[] = [];
    const poller = new Poller(task, {
      intervalMs: () => 1000,
      visibility: new FakeVisibility(),
      onScheduled: delay => delays.push(delay)
    });
    poller.start();
    await vi.advanceTimersByTimeAsync(0 + 2000 + 4000 + 8000);
    expect(task).toHaveBeenCalledTimes(4);
    expect(delays).toEqual([2000, 4000, 8000, 16000]);
    expect(poller.failures).toBe(4);
    fail = false;
    await vi.advanceTimersByTimeAsync(16000);
    expect(poller.failures).toBe(0);
    expect(delays[delays.length - 1]).toBe(1000);
    poller.stop();
  });

  it('stops polling while the tab is hidden and polls at once when it is shown again', async () => {
    const visibility = new FakeVisibility();
    const task = vi.fn(async () => {});
    const poller = new Poller(task, { intervalMs: () => 1000, visibility });
    poller.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(task).toHaveBeenCalledTimes(1);
    visibility.set(true);
    await vi.advanceTimersByTimeAsync(60000);
    expect(task).toHaveBeenCalledTimes(1);
    visibility.set(false);
    await vi.advanceTimersByTimeAsync(0);
    expect(task).toHaveBeenCalledTimes(2);
    poller.stop();
  });

  it('does nothing after stop and lets go of the page', async () => {
    const visibility = new FakeVisibility();
    const task = vi.fn(async () => {});
    const poller = new Poller(task, { intervalMs: () => 1000, visibility });
    poller.start();
    await vi.advanceTimersByTimeAsync(0);
    poller.stop();
    await vi.advanceTimersByTimeAsync(10000);
    visibility.set(false);
    await vi.advanceTimersByTimeAsync(0);
    expect(task).toHaveBeenCalledTimes(1);
    expect(visibility.listenerCount).toBe(0);
  });

  it('never runs two polls at once when refreshed mid-poll', async () => {
    let running = 0;
    let overlap = false;
    const task = vi.fn(async () => {
      running++;
      overlap ||= running > 1;
      await new Promise(resolve => setTimeout(resolve, 500));
      running--;
    });
    const poller = new Poller(task, { intervalMs: () => 1000, visibility: new FakeVisibility() });
    poller.start();
    poller.refresh();
    poller.refresh();
    await vi.advanceTimersByTimeAsync(1200);
    expect(overlap).toBe(false);
    expect(task).toHaveBeenCalledTimes(2);
    poller.stop();
  });
});
