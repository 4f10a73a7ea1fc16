/**
 * The verification results as the checklist shows them. Pure functions.
 */
import { formatAgo, formatBytes, formatDuration } from './format';
import type { CheckStatus, VerifyCheck, VerifyResponse } from './types';

export interface DetailItem {
  label: string;
  value: string;
}

export interface CheckRow {
  id: string;
  title: string;
  status: CheckStatus;
  /** A glyph that is not the only carrier of meaning: `statusLabel` says it in words. */
  symbol: string;
  statusLabel: string;
  reason: string;
  details: DetailItem[];
}

const STATUS_LOOK: Record<CheckStatus, { symbol: string; label: string }> = {
  pass: { symbol: '✓', label: 'Passed' },
  fail: { symbol: '✗', label: 'Failed' },
  skipped: { symbol: '–', label: 'Skipped' }
};

/**
 * Detail keys we know a unit for, matched on the key's ending. Anything else is shown with
 * its key as the label, so a new measurement from the server needs no front-end change.
 */
const UNIT_SUFFIXES: { suffix: string; label: (stem: string) => string; unit: string }[] = [
  { suffix: 'tflops', label: stem => stem || 'throughput', unit: 'TFLOP/s' },
  { suffix: 'gflops', label: stem => stem || 'throughput', unit: 'GFLOP/s' },
  { suffix: 'bandwidth_gbps', label: stem => `${stem}bandwidth`, unit: 'GB/s' },
  { suffix: 'gbps', label: stem => stem || 'rate', unit: 'GB/s' },
  { suffix: 'seconds', label: stem => stem || 'time', unit: 's' },
  { suffix: 'ms', label: stem => stem || 'time', unit: 'ms' }
];

/** "max_abs_error" -> "max abs error". */
export function humanizeKey(key: string): string {
  return key.replace(/[_-]+/g, ' ').trim();
}

/** Integers as they are, other numbers to four significant digits; tiny ones in e-notation. */
export function formatDetailNumber(value: number): string {
  if (Number.isInteger(value)) {
    return String(value);
  }
  if (value !== 0 && Math.abs(value) < 1e-3) {
    return value.toExponential(2);
  }
  return String(Number(value.toPrecision(4)));
}

/** One entry of a check's `details` as label and value; null for what cannot be shown. */
export function detailItem(key: string, value: unknown): DetailItem | null {
  if (typeof value === 'number' && Number.isFinite(value)) {
    if (key.endsWith('bytes')) {
      return { label: humanizeKey(key.slice(0, -'bytes'.length)) || 'size', value: formatBytes(value) };
    }
    for (const known of UNIT_SUFFIXES) {
      if (key === known.suffix || key.endsWith(`_${known.suffix}`)) {
        const stem = humanizeKey(key.slice(0, key.length - known.suffix.length));
        const label = known.label(stem ? `${stem} ` : '').trim();
        return { label, value: `${formatDetailNumber(value)} ${known.unit}` };
      }
    }
    return { label: humanizeKey(key), value: formatDetailNumber(value) };
  }
  if (typeof value === 'string' && value.length > 0) {
    return { label: humanizeKey(key), value };
  }
  if (typeof value === 'boolean') {
    return { label: humanizeKey(key), value: value ? 'yes' : 'no' };
  }
  return null;
}

/** A check as one row of the checklist. */
export function checkRow(check: VerifyCheck): CheckRow {
  const look = STATUS_LOOK[check.status] ?? STATUS_LOOK.fail;
  const details = Object.entries(check.details ?? {})
    .map(([key, value]) => detailItem(key, value))
    .filter((item): item is DetailItem => item !== null);
  return {
    id: check.id,
    title: check.title,
    status: STATUS_LOOK[check.status] ? check.status : 'fail',
    symbol: look.symbol,
    statusLabel: look.label,
    reason: check.reason,
    details
  };
}

export interface VerifyView {
  headline: string;
  /** The server's own sentence, when it differs from the headline. */
  message: string;
  tone: 'ok' | 'info' | 'error' | 'busy';
  /** "Last run 3 min ago, took 4.2 s"; empty before the first run. */
  lastRun: string;
  /** Unix seconds of the last finished run, for an absolute timestamp. */
  lastRunAt: number | null;
  running: boolean;
  rows: CheckRow[];
  versions: DetailItem[];
}

const VERSION_LABELS: [keyof VerifyResponse['versions'], string][] = [
  ['torch', 'PyTorch'],
  ['cuda', 'CUDA runtime'],
  ['cudnn', 'cuDNN'],
  ['nccl', 'NCCL']
];

function headlineOf(verify: VerifyResponse, rows: CheckRow[]): [string, VerifyView['tone']] {
  if (verify.state === 'never_run') {
    return ['Verification has not run yet.', 'info'];
  }
  if (verify.state === 'running') {
    return ['Verification is running…', 'busy'];
  }
  const failed = rows.filter(row => row.status === 'fail').length;
  if (verify.summary === 'no_gpu') {
    return [
      failed
        ? `No GPU assigned, and ${failed} of ${rows.length} checks failed.`
        : 'No GPU assigned: the checks that need one were skipped.',
      failed ? 'error' : 'info'
    ];
  }
  if (verify.summary === 'fail' || failed > 0) {
    return [`${failed || 'Some'} of ${rows.length} checks failed.`, 'error'];
  }
  return ['All checks passed.', 'ok'];
}

/** The whole verification section. `nowSeconds` is the browser's clock in unix seconds. */
export function verifyView(verify: VerifyResponse, nowSeconds: number): VerifyView {
  const rows = verify.checks.map(checkRow);
  const [headline, tone] = headlineOf(verify, rows);
  let lastRun = '';
  if (verify.state === 'running' && verify.started_at !== null) {
    lastRun = `Started ${formatAgo(verify.started_at, nowSeconds)}`;
  } else if (verify.finished_at !== null) {
    lastRun = `Last run ${formatAgo(verify.finished_at, nowSeconds)}`;
    if (verify.started_at !== null) {
      lastRun += `, took ${formatDuration(verify.finished_at - verify.started_at)}`;
    }
  }
  const message = verify.message && verify.message !== headline ? verify.message : '';
  const versions = VERSION_LABELS.map(([key, label]) => ({
    label,
    value: verify.versions?.[key] ?? 'not available'
  }));
  return {
    headline,
    message,
    tone,
    lastRun,
    lastRunAt: verify.state === 'done' ? verify.finished_at : null,
    running: verify.state === 'running',
    rows,
    versions
  };
}
