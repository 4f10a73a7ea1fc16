/**
 * The state the panel and the status-bar item share: the latest GPU status, its history,
 * the verification results and what went wrong talking to the server. One model per page,
 * so two views never double the polling.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { pollIntervalMs } from './backoff';
import { appendSample, DEFAULT_WINDOW_SECONDS, emptyHistory, historyFromServer } from './history';
import { Poller, VisibilitySource } from './poller';
import { classifyFailure, FetchProblem, problemSentence } from './states';
import { ApiError } from './types';
import type { GpuApi, GpuHistory, StatusResponse, VerifyResponse } from './types';

/** Which part of the model changed. */
export type ModelChange = 'status' | 'verify';

export interface GpuModelOptions {
  /** Seconds of history kept per GPU. */
  windowSeconds?: number;
  /** Milliseconds since the epoch; injectable for tests. */
  clock?: () => number;
  /** Poll the verification this often while no run is in progress, in ms. */
  verifyIdleMs?: number;
  /** ... and this often while one is, in ms. */
  verifyBusyMs?: number;
}

function problemOf(error: unknown): FetchProblem {
  if (error instanceof ApiError) {
    return classifyFailure(error.status, error.message);
  }
  return classifyFailure(null, error instanceof Error ? error.message : String(error));
}

export class GpuModel {
  constructor(
    private readonly api: GpuApi,
    visibility: VisibilitySource,
    options: GpuModelOptions = {}
  ) {
    this._windowSeconds = options.windowSeconds ?? DEFAULT_WINDOW_SECONDS;
    this._clock = options.clock ?? (() => Date.now());
    const verifyIdleMs = options.verifyIdleMs ?? 30000;
    const verifyBusyMs = options.verifyBusyMs ?? 1500;
    this._statusPoller = new Poller(() => this._pollStatus(), {
      intervalMs: () => pollIntervalMs(this._status?.interval),
      visibility,
      onScheduled: (delayMs, failures) => {
        if (failures > 0 && this._problem) {
          this._retryInSeconds = delayMs / 1000;
          this._changed.emit('status');
        }
      }
    });
    this._verifyPoller = new Poller(() => this._pollVerify(), {
      intervalMs: () => (this._verify?.state === 'running' ? verifyBusyMs : verifyIdleMs),
      visibility
    });
  }

  /** Emitted after every poll and user action that changed something. */
  get changed(): ISignal<GpuModel, ModelChange> {
    return this._changed;
  }

  /** The last status the server sent; null before the first answer. */
  get status(): StatusResponse | null {
    return this._status;
  }

  /** Why the last status request failed; null when it succeeded. */
  get problem(): FetchProblem | null {
    return this._problem;
  }

  /** Seconds until the next attempt after a failure; null while healthy. */
  get retryInSeconds(): number | null {
    return this._retryInSeconds;
  }

  get verify(): VerifyResponse | null {
    return this._verify;
  }

  /** A sentence about the last verification request that failed (e.g. rate limited). */
  get verifyNotice(): string {
    return this._verifyNotice;
  }

  /** The history of one GPU, oldest first. */
  history(uuid: string): GpuHistory {
    return this._history.get(uuid) ?? emptyHistory();
  }

  /** A view that needs live data; polling runs while at least one is attached. */
  acquire(): void {
    this._users++;
    if (this._users === 1) {
      this._statusPoller.start();
      this._verifyPoller.start();
    }
  }

  release(): void {
    this._users = Math.max(0, this._users - 1);
    if (this._users === 0) {
      this._statusPoller.stop();
      this._verifyPoller.stop();
    }
  }

  /** Ask the server to run the verification again ("Run again"). */
  async runVerification(): Promise<void> {
    this._verifyNotice = '';
    this._noticeFromPoll = false;
    try {
      this._verify = await this.api.runVerify();
    } catch (error) {
      if (error instanceof ApiError && error.status === 429) {
        this._verifyNotice =
          error.message || 'The verification ran moments ago. Try again in a little while.';
      } else {
        this._verifyNotice = problemSentence(problemOf(error), null);
      }
      this._changed.emit('verify');
      return;
    }
    this._changed.emit('verify');
    // Follow the new run closely until it finishes.
    this._verifyPoller.refresh();
  }

  /** "Keep": tell the server the GPUs are still wanted; the warning goes away. */
  async keepGpus(): Promise<void> {
    try {
      const reclaim = await this.api.keep();
      this._keepNotice = '';
      if (this._status) {
        this._status = { ...this._status, reclaim };
      }
    } catch (error) {
      this._keepNotice = problemSentence(problemOf(error), null);
    }
    this._changed.emit('status');
  }

  /** Why the last "keep" failed; empty when it worked. */
  get keepNotice(): string {
    return this._keepNotice;
  }

  dispose(): void {
    this._statusPoller.stop();
    this._verifyPoller.stop();
    Signal.clearData(this);
  }

  private async _pollStatus(): Promise<void> {
    const now = this._clock();
    // After a gap (hidden tab, server trouble) our own samples have holes: take the
    // server's history again instead of drawing a line across the gap.
    const gapMs = 10000 + 3 * pollIntervalMs(this._status?.interval);
    const withHistory = this._lastSuccessAt === null || now - this._lastSuccessAt > gapMs;
    let status: StatusResponse;
    try {
      status = await this.api.status(withHistory);
    } catch (error) {
      this._problem = problemOf(error);
      this._retryInSeconds = null;
      this._changed.emit('status');
      throw error;
    }
    this._lastSuccessAt = now;
    this._problem = null;
    this._retryInSeconds = null;
    this._absorb(status);
    this._changed.emit('status');
  }

  private _absorb(status: StatusResponse): void {
    const gpus = Array.isArray(status.gpus) ? status.gpus : [];
    const next = new Map<string, GpuHistory>();
    for (const gpu of gpus) {
      let history = status.history
        ? historyFromServer(status.history[gpu.uuid])
        : this._history.get(gpu.uuid) ?? emptyHistory();
      if (typeof status.sampled_at === 'number') {
        history = appendSample(history, status.sampled_at, gpu, this._windowSeconds);
      }
      next.set(gpu.uuid, history);
    }
    this._history = next;
    this._status = { ...status, gpus };
  }

  private async _pollVerify(): Promise<void> {
    try {
      this._verify = await this.api.verify();
    } catch (error) {
      this._verifyNotice = problemSentence(problemOf(error), null);
      this._noticeFromPoll = true;
      this._changed.emit('verify');
      throw error;
    }
    // A failed poll's sentence is out of date now; a refused "Run again" stays until a run starts.
    if (this._noticeFromPoll || this._verify.state === 'running') {
      this._verifyNotice = '';
      this._noticeFromPoll = false;
    }
    this._changed.emit('verify');
  }

  private _status: StatusResponse | null = null;
  private _problem: FetchProblem | null = null;
  private _retryInSeconds: number | null = null;
  private _verify: VerifyResponse | null = null;
  private _verifyNotice = '';
  private _keepNotice = '';
  private _noticeFromPoll = false;
  private _history = new Map<string, GpuHistory>();
  private _lastSuccessAt: number | null = null;
  private _users = 0;
  private readonly _windowSeconds: number;
  private readonly _clock: () => number;
  private readonly _statusPoller: Poller;
  private readonly _verifyPoller: Poller;
  private readonly _changed = new Signal<GpuModel, ModelChange>(this);
}
