/**
 * A poll loop that pauses while the browser tab is hidden and backs off on failures.
 *
 * The schedule itself is the pure `nextDelay`; this class only owns the timer. Timers and
 * page visibility are injected so tests can drive them.
 */
import { nextDelay } from './backoff';

/** Where the poller learns whether anyone can see the page. */
export interface VisibilitySource {
  isHidden(): boolean;
  /** Call `listener` on every change; returns a function that unsubscribes. */
  subscribe(listener: () => void): () => void;
}

/** The browser's own visibility (`document.hidden`). */
export function documentVisibility(doc: Document = document): VisibilitySource {
  return {
    isHidden: () => doc.hidden,
    subscribe: listener => {
      doc.addEventListener('visibilitychange', listener);
      return () => doc.removeEventListener('visibilitychange', listener);
    }
  };
}

export interface PollerOptions {
  /** Delay between successful polls, in ms; read anew before every wait. */
  intervalMs: () => number;
  /** Longest wait after repeated failures, in ms. */
  maxBackoffMs?: number;
  visibility: VisibilitySource;
  /** Told the delay before each wait, and how many polls in a row have failed. */
  onScheduled?: (delayMs: number, failures: number) => void;
}

export class Poller {
  constructor(
    private readonly task: () => Promise<void>,
    private readonly options: PollerOptions
  ) {}

  /** Consecutive failed polls; 0 after a success. */
  get failures(): number {
    return this._failures;
  }

  get isRunning(): boolean {
    return this._running;
  }

  /** Poll now and keep polling until `stop()`. Starting twice changes nothing. */
  start(): void {
    if (this._running) {
      return;
    }
    this._running = true;
    this._unsubscribe = this.options.visibility.subscribe(() => this._onVisibilityChange());
    void this._tick();
  }

  stop(): void {
    this._running = false;
    this._clearTimer();
    this._unsubscribe?.();
    this._unsubscribe = null;
  }

  /** Poll now instead of at the next scheduled time (e.g. after a user action). */
  refresh(): void {
    if (this._running) {
      void this._tick();
    }
  }

  private _onVisibilityChange(): void {
    if (this.options.visibility.isHidden()) {
      this._clearTimer();
    } else {
      // Coming back to the tab: show fresh numbers at once rather than after a full wait.
      void this._tick();
    }
  }

  private async _tick(): Promise<void> {
    this._clearTimer();
    if (!this._running || this.options.visibility.isHidden()) {
      return;
    }
    if (this._inFlight) {
      this._again = true;
      return;
    }
    this._inFlight = true;
    try {
      await this.task();
      this._failures = 0;
    } catch {
      this._failures++;
    } finally {
      this._inFlight = false;
    }
    if (this._again) {
      this._again = false;
      void this._tick();
      return;
    }
    this._schedule();
  }

  private _schedule(): void {
    if (!this._running || this.options.visibility.isHidden()) {
      return;
    }
    const delay = nextDelay(this._failures, {
      baseMs: this.options.intervalMs(),
      factor: 2,
      maxMs: this.options.maxBackoffMs ?? 60000
    });
    this.options.onScheduled?.(delay, this._failures);
    this._timer = setTimeout(() => void this._tick(), delay);
  }

  private _clearTimer(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  private _failures = 0;
  private _running = false;
  private _inFlight = false;
  private _again = false;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _unsubscribe: (() => void) | null = null;
}
