/**
 * Turning raw API numbers into the short strings the panel and status bar show.
 *
 * Pure functions only. Memory uses binary units (GiB), which is what NVML and nvidia-smi
 * count in; a missing value (null: the GPU does not report it) is shown as an em dash.
 */
import type { Gpu, StatusResponse } from './types';

/** Shown wherever a GPU does not report a value. */
export const MISSING = '—';

const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

function isNumber(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** Up to one decimal below 100, none above; "80.0" becomes "80". */
export function formatNumber(value: number): string {
  const text = Math.abs(value) < 100 ? value.toFixed(1) : value.toFixed(0);
  return text.endsWith('.0') ? text.slice(0, -2) : text;
}

/** The binary unit exponent (0 = B, 3 = GiB) that shows `bytes` as a number below 1024. */
function unitExponent(bytes: number): number {
  let exponent = 0;
  let value = Math.abs(bytes);
  while (value >= 1024 && exponent < BINARY_UNITS.length - 1) {
    value /= 1024;
    exponent++;
  }
  return exponent;
}

function inUnit(bytes: number, exponent: number): string {
  return formatNumber(bytes / Math.pow(1024, exponent));
}

/** "11.2 GiB", "512 MiB". */
export function formatBytes(bytes: number | null | undefined): string {
  if (!isNumber(bytes)) {
    return MISSING;
  }
  const exponent = unitExponent(bytes);
  return `${inUnit(bytes, exponent)} ${BINARY_UNITS[exponent]}`;
}

/** "11.2/80 GiB": both numbers in the unit that suits the total. */
export function formatMemory(
  used: number | null | undefined,
  total: number | null | undefined
): string {
  if (!isNumber(total)) {
    return formatBytes(used);
  }
  const exponent = unitExponent(total);
  const usedText = isNumber(used) ? inUnit(used, exponent) : MISSING;
  return `${usedText}/${inUnit(total, exponent)} ${BINARY_UNITS[exponent]}`;
}

/** "37%". */
export function formatPercent(value: number | null | undefined): string {
  return isNumber(value) ? `${Math.round(value)}%` : MISSING;
}

/** "215/700 W", or "215 W" when the GPU reports no limit. */
export function formatPower(
  draw: number | null | undefined,
  limit: number | null | undefined
): string {
  const watts = (w: number) => (Math.abs(w) < 10 ? w.toFixed(1) : w.toFixed(0));
  if (!isNumber(draw)) {
    return isNumber(limit) ? `${MISSING}/${watts(limit)} W` : MISSING;
  }
  return isNumber(limit) ? `${watts(draw)}/${watts(limit)} W` : `${watts(draw)} W`;
}

/** "54 °C". */
export function formatTemperature(celsius: number | null | undefined): string {
  return isNumber(celsius) ? `${Math.round(celsius)} °C` : MISSING;
}

/** "1980 MHz". */
export function formatClock(mhz: number | null | undefined): string {
  return isNumber(mhz) ? `${Math.round(mhz)} MHz` : MISSING;
}

/** "Gen 5 ×16". */
export function formatPcie(
  generation: number | null | undefined,
  width: number | null | undefined
): string {
  if (!isNumber(generation) && !isNumber(width)) {
    return MISSING;
  }
  const gen = isNumber(generation) ? `Gen ${generation}` : `Gen ${MISSING}`;
  return isNumber(width) ? `${gen} ×${width}` : gen;
}

/** "just now", "42 s ago", "3 min ago", "2 h ago", "5 days ago". */
export function formatAgo(thenSeconds: number, nowSeconds: number): string {
  const elapsed = Math.max(0, nowSeconds - thenSeconds);
  if (elapsed < 5) {
    return 'just now';
  }
  if (elapsed < 60) {
    return `${Math.floor(elapsed)} s ago`;
  }
  if (elapsed < 3600) {
    return `${Math.floor(elapsed / 60)} min ago`;
  }
  if (elapsed < 86400) {
    return `${Math.floor(elapsed / 3600)} h ago`;
  }
  const days = Math.floor(elapsed / 86400);
  return `${days} ${days === 1 ? 'day' : 'days'} ago`;
}

/** "4.2 s", "1 min 5 s". */
export function formatDuration(seconds: number): string {
  if (seconds < 60) {
    return `${formatNumber(Math.max(0, seconds))} s`;
  }
  const minutes = Math.floor(seconds / 60);
  const rest = Math.round(seconds - minutes * 60);
  return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
}

/** One GPU in the status bar's words: "GPU 0: 37% · 11.2/80 GiB". */
export function gpuSummary(gpu: Gpu): string {
  if (gpu.slice_of) {
    // NVML has no utilisation per MIG slice: its memory only.
    return `GPU ${gpu.index} (MIG slice): ${formatMemory(gpu.memory_used, gpu.memory_total)}`;
  }
  return `GPU ${gpu.index}: ${formatPercent(gpu.utilization_gpu)} · ${formatMemory(
    gpu.memory_used,
    gpu.memory_total
  )}`;
}

/**
 * The status-bar text: the first GPU, "(+N)" when there are more, "No GPU" when none is
 * assigned, "GPU: unavailable" when the server cannot tell (the tooltip says why).
 */
export function statusBarText(status: StatusResponse | null, failed = false): string {
  if (failed) {
    return 'GPU: unavailable';
  }
  if (!status) {
    return 'GPU: …';
  }
  if (status.state === 'no_gpu' || (status.state === 'ok' && status.gpus.length === 0)) {
    return 'No GPU';
  }
  if (status.state !== 'ok') {
    return 'GPU: unavailable';
  }
  const more = status.gpus.length - 1;
  return gpuSummary(status.gpus[0]) + (more > 0 ? ` (+${more})` : '');
}
