import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { GpuModel } from '../src/model';
import { ApiError } from '../src/types';
import type { GpuApi, ReclaimNotice, StatusResponse, VerifyResponse } from '../src/types';
import { FakeVisibility, gpu, status, verify } from './fixtures';

/** A server stand-in whose answers each test scripts. */
class FakeApi implements GpuApi {
  statusCalls: boolean[] = [];
  nextStatus: () => StatusResponse = () => status();
  nextVerify: () => VerifyResponse = () => verify();
  nextRun: () => VerifyResponse = () => verify({ state: 'running', finished_at: null, summary: null });

  async status(withHistory: boolean): Promise<StatusResponse> {
    this.statusCalls.push(withHistory);
    return this.nextStatus();
  }
  async verify(): Promise<VerifyResponse> {
    return this.nextVerify();
  }
  async runVerify(): Promise<VerifyResponse> {
    return this.nextRun();
  }
  keeps = 0;
  async keep(): Promise<ReclaimNotice> {
    this.keeps++;
    return { warning: null, kept_at: 1234 };
  }
}

describe('GPU model', () => {
  let api: FakeApi;
  let now: number;
  let model: GpuModel;

  beforeEach(() => {
    vi.useFakeTimers();
    api = new FakeApi();
    now = 1_000_000;
    model = new GpuModel(api, new FakeVisibility(), { clock: () => now });
  });
  afterEach(() => {
    model.dispose();
    vi.useRealTimers();
  });

  it("asks for the server's history once, then polls cheaply and extends it itself", async () => {
    let t = 100;
    api.nextStatus = () =>
      status({
        sampled_at: t,
        gpus: [gpu({ utilization_gpu: t })],
        history: t === 100 ? { 'GPU-aaaa': { t: [98, 99], utilization_gpu: [1, 2], memory_used: [0, 0], temperature: [40, 41], power_draw: [9, 9] } } : undefined
      });
    model.acquire();
    await vi.advanceTimersByTimeAsync(0);
    t = 101;
    now += 1000;
    await vi.advanceTimersByTimeAsync(1000);
    expect(api.statusCalls).toEqual([true, false]);
    const history = model.history('GPU-aaaa');
    expect(history.t).toEqual([98, 99, 100, 101]);
    expect(history.utilization_gpu).toEqual([1, 2, 100, 101]);
  });

  it('fetches the history again after a gap in polling', async () => {
    model.acquire();
    await vi.advanceTimersByTimeAsync(0);
    now += 60_000; // e.g. the laptop slept
    await vi.advanceTimersByTimeAsync(1000);
    expect(api.statusCalls).toEqual([true, true]);
  });

  it('reports a missing extension, then clears the problem once the server answers', async () => {
    let missing = true;
    api.nextStatus = () => {
      if (missing) {
        throw new ApiError(404, 'Not Found');
      }
      return status();
    };
    const changes: string[] = [];
    model.changed.connect((_, change) => changes.push(change));
    model.acquire();
    await vi.advanceTimersByTimeAsync(0);
    expect(model.problem?.kind).toBe('not_found');
    // No interval from the server yet: 2 s, doubled once for the failure.
    expect(model.retryInSeconds).toBe(4);
    expect(changes).toContain('status');
    missing = false;
    await vi.advanceTimersByTimeAsync(4000);
    expect(model.problem).toBeNull();
    expect(model.status?.gpus).toHaveLength(1);
  });

  it('forgets the history of a GPU that is no longer listed', async () => {
    let gpus = [gpu(), gpu({ index: 1, uuid: 'GPU-bbbb' })];
    let t = 1;
    api.nextStatus = () => status({ sampled_at: t, gpus });
    model.acquire();
    await vi.advanceTimersByTimeAsync(0);
    expect(model.history('GPU-bbbb').t).toEqual([1]);
    gpus = [gpu()];
    t = 2;
    await vi.advanceTimersByTimeAsync(1000);
    expect(model.history('GPU-bbbb').t).toEqual([]);
    expect(model.history('GPU-aaaa').t).toEqual([1, 2]);
  });

  it('polls only while a view is attached', async () => {
    model.acquire();
    model.acquire();
    await vi.advanceTimersByTimeAsync(0);
    model.release();
    await vi.advanceTimersByTimeAsync(1000);
    expect(api.statusCalls).toHaveLength(2);
    model.release();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(api.statusCalls).toHaveLength(2);
  });

  it("shows the server's sentence when a re-run is refused as too soon", async () => {
    api.nextRun = () => {
      throw new ApiError(429, 'The verification ran 5 s ago; it can run again in 25 s.');
    };
    model.acquire();
    await vi.advanceTimersByTimeAsync(0);
    await model.runVerification();
    expect(model.verifyNotice).toBe('The verification ran 5 s ago; it can run again in 25 s.');
    expect(model.verify?.state).toBe('done');
  });

  it('follows a new run closely until it is done', async () => {
    model.acquire();
    await vi.advanceTimersByTimeAsync(0);
    let state: VerifyResponse['state'] = 'running';
    api.nextVerify = () => verify({ state, started_at: 2000, finished_at: state === 'done' ? 2003 : null });
    await model.runVerification();
    expect(model.verify?.state).toBe('running');
    await vi.advanceTimersByTimeAsync(1500);
    expect(model.verify?.state).toBe('running');
    state = 'done';
    await vi.advanceTimersByTimeAsync(1500);
    expect(model.verify?.state).toBe('done');
    expect(model.verify?.started_at).toBe(2000);
  });

  it('"keep" clears the idle warning at once and tells the server', async () => {
    const warning = { stop_at: 2000, idle_seconds: 300, seconds_left: 95, message: '' };
    api.nextStatus = () => status({ reclaim: { warning, kept_at: null } });
    model.acquire();
    await vi.advanceTimersByTimeAsync(0);
    expect(model.status?.reclaim?.warning?.seconds_left).toBe(95);
    await model.keepGpus();
    expect(api.keeps).toBe(1);
    expect(model.status?.reclaim).toEqual({ warning: null, kept_at: 1234 });
    expect(model.keepNotice).toBe('');
  });
});
