/**
 * Words for the idle-GPU warning of the hub's reclaim service. Pure functions of the
 * warning, so the panel, the status bar and the unit tests agree on them.
 */
import type { ReclaimWarning, StatusResponse } from './types';

/** "2:05" for 125 s, "1:02:05" past an hour; never negative. */
export function countdown(seconds: number): string {
  const total = Math.max(0, Math.ceil(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** "12 min", "45 s", "2 h 5 min": how long the GPUs have been idle. */
export function duration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  if (total < 60) {
    return `${total} s`;
  }
  const minutes = Math.floor(total / 60);
  if (minutes < 60) {
    return `${minutes} min`;
  }
  const rest = minutes % 60;
  return `${Math.floor(minutes / 60)} h` + (rest ? ` ${rest} min` : '');
}

/** The warning in the status document, or null. */
export function idleWarning(status: StatusResponse | null): ReclaimWarning | null {
  return status?.reclaim?.warning ?? null;
}

/** The panel's sentence: what happened, when the server stops, and what to do. */
export function idleSentence(warning: ReclaimWarning): string {
  const what = warning.message || `Your GPUs have been idle for ${duration(warning.idle_seconds)}.`;
  return (
    `${what} This server stops in ${countdown(warning.seconds_left)} to free them for others, ` +
    'unless you keep it. Your files stay.'
  );
}

/** The status bar's short form. */
export function idleStatusText(warning: ReclaimWarning): string {
  return `GPU idle: stops in ${countdown(warning.seconds_left)}`;
}
