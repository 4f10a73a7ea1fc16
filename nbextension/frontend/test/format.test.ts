import { describe, expect, it } from 'vitest';

import {
  formatAgo,
  formatBytes,
  formatDuration,
  formatMemory,
  formatPcie,
  formatPercent,
  formatPower,
  formatTemperature,
  MISSING,
  statusBarText
} from '../src/format';
import { GiB, gpu, MiB, status } from './fixtures';

describe('memory and byte formatting', () => {
  it('shows used over total in the unit of the total, dropping a trailing .0', () => {
    expect(formatMemory(11.2 * GiB, 80 * GiB)).toBe('11.2/80 GiB');
    expect(formatMemory(512 * MiB, 4 * GiB)).toBe('0.5/4 GiB');
    expect(formatMemory(300 * MiB, 512 * MiB)).toBe('300/512 MiB');
  });

  it('rounds to whole numbers from 100 up and keeps one decimal below', () => {
    expect(formatBytes(123.4 * GiB)).toBe('123 GiB');
    expect(formatBytes(1.25 * GiB)).toBe('1.3 GiB');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(2048)).toBe('2 KiB');
  });

  it('shows a dash for values the GPU does not report', () => {
    expect(formatBytes(null)).toBe(MISSING);
    expect(formatMemory(null, 80 * GiB)).toBe(`${MISSING}/80 GiB`);
    expect(formatMemory(3 * GiB, null)).toBe('3 GiB');
    expect(formatPercent(null)).toBe(MISSING);
    expect(formatTemperature(undefined)).toBe(MISSING);
    expect(formatPower(null, null)).toBe(MISSING);
    expect(formatPcie(null, null)).toBe(MISSING);
  });
});

describe('percent, power, temperature', () => {
  it('rounds percent and temperature to whole numbers', () => {
    expect(formatPercent(36.6)).toBe('37%');
    expect(formatPercent(0)).toBe('0%');
    expect(formatTemperature(53.7)).toBe('54 °C');
  });

  it('shows power draw over the limit when there is one', () => {
    expect(formatPower(215.4, 700)).toBe('215/700 W');
    expect(formatPower(215.4, null)).toBe('215 W');
    expect(formatPower(8.25, 70)).toBe('8.3/70 W');
    expect(formatPower(null, 700)).toBe(`${MISSING}/700 W`);
  });

  it('names the PCIe link by generation and width', () => {
    expect(formatPcie(5, 16)).toBe('Gen 5 ×16');
    expect(formatPcie(4, null)).toBe('Gen 4');
  });
});

describe('relative times and durations', () => {
  it('says how long ago in the largest sensible unit', () => {
    expect(formatAgo(1000, 1002)).toBe('just now');
    expect(formatAgo(1000, 1042)).toBe('42 s ago');
    expect(formatAgo(1000, 1000 + 150)).toBe('2 min ago');
    expect(formatAgo(1000, 1000 + 7300)).toBe('2 h ago');
    expect(formatAgo(0, 86400)).toBe('1 day ago');
    expect(formatAgo(0, 3 * 86400)).toBe('3 days ago');
  });

  it('treats a timestamp from the future (clock skew) as just now', () => {
    expect(formatAgo(2000, 1000)).toBe('just now');
  });

  it('shows durations in seconds, then minutes and seconds', () => {
    expect(formatDuration(4.21)).toBe('4.2 s');
    expect(formatDuration(65)).toBe('1 min 5 s');
    expect(formatDuration(120)).toBe('2 min');
  });
});

describe('status-bar text', () => {
  it("shows GPU 0's utilisation and memory", () => {
    expect(statusBarText(status())).toBe('GPU 0: 37% · 11.2/80 GiB');
  });

  it('shows a MIG slice by its memory: NVML has no utilisation per slice', () => {
    const slice = gpu({ slice_of: 'H100', utilization_gpu: null, memory_used: GiB, memory_total: 10 * GiB });
    expect(statusBarText(status({ gpus: [slice] }))).toBe('GPU 0 (MIG slice): 1/10 GiB');
  });

  it('counts the further GPUs after the first', () => {
    const two = status({ gpus: [gpu(), gpu({ index: 1, uuid: 'GPU-bbbb', utilization_gpu: 90 })] });
    expect(statusBarText(two)).toBe('GPU 0: 37% · 11.2/80 GiB (+1)');
  });

  it('says "No GPU" in a CPU container, whether reported as no_gpu or as no devices listed', () => {
    expect(statusBarText(status({ state: 'no_gpu', gpus: [], message: 'No GPU is assigned.' }))).toBe(
      'No GPU'
    );
    expect(statusBarText(status({ gpus: [] }))).toBe('No GPU');
  });

  it('says unavailable when the driver is missing or the server cannot be asked', () => {
    expect(statusBarText(status({ state: 'driver_not_loaded', gpus: [] }))).toBe('GPU: unavailable');
    expect(statusBarText(status(), true)).toBe('GPU: unavailable');
  });

  it('shows a placeholder before the first answer', () => {
    expect(statusBarText(null)).toBe('GPU: …');
  });

  it('shows a dash for a utilisation the GPU does not report', () => {
    expect(statusBarText(status({ gpus: [gpu({ utilization_gpu: null })] }))).toBe(
      `GPU 0: ${MISSING} · 11.2/80 GiB`
    );
  });
});
