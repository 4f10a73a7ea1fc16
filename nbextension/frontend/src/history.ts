/**
 * Per-GPU metric history: seeded from the server's history, then extended with each
 * polled sample. Pure functions returning new objects.
 */
import type { Gpu, GpuHistory, HistoryMetric } from './types';
import { HISTORY_METRICS } from './types';

/** Keep at most this many seconds of history (the server's default window is 5 minutes). */
export const DEFAULT_WINDOW_SECONDS = 300;

export function emptyHistory(): GpuHistory {
  return { t: [], utilization_gpu: [], memory_used: [], temperature: [], power_draw: [] };
}

/** A defensive copy of the server's history, with every series as long as `t`. */
export function historyFromServer(raw: Partial<GpuHistory> | undefined | null): GpuHistory {
  const history = emptyHistory();
  const times = Array.isArray(raw?.t) ? raw!.t : [];
  history.t = [...times];
  for (const metric of HISTORY_METRICS) {
    const series = Array.isArray(raw?.[metric]) ? (raw![metric] as (number | null)[]) : [];
    history[metric] = times.map((_, i) => (typeof series[i] === 'number' ? series[i] : null));
  }
  return history;
}

/** Drop the points older than `windowSeconds` before the newest one. */
export function trimHistory(history: GpuHistory, windowSeconds: number): GpuHistory {
  const newest = history.t[history.t.length - 1];
  if (newest === undefined) {
    return history;
  }
  const first = history.t.findIndex(t => t >= newest - windowSeconds);
  if (first <= 0) {
    return history;
  }
  const trimmed = emptyHistory();
  trimmed.t = history.t.slice(first);
  for (const metric of HISTORY_METRICS) {
    trimmed[metric] = history[metric].slice(first);
  }
  return trimmed;
}

/**
 * Append one polled sample taken at `sampledAt` (unix s). A sample no newer than the last
 * point is ignored, so polling faster than the server samples adds no duplicates.
 */
export function appendSample(
  history: GpuHistory,
  sampledAt: number,
  gpu: Gpu,
  windowSeconds: number = DEFAULT_WINDOW_SECONDS
): GpuHistory {
  const last = history.t[history.t.length - 1];
  if (last !== undefined && sampledAt <= last) {
    return history;
  }
  const next = emptyHistory();
  next.t = [...history.t, sampledAt];
  for (const metric of HISTORY_METRICS) {
    const value = gpu[metric as HistoryMetric];
    next[metric] = [...history[metric], typeof value === 'number' ? value : null];
  }
  return trimHistory(next, windowSeconds);
}
