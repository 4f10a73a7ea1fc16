import { describe, expect, it } from 'vitest';

import { checkRow, detailItem, formatDetailNumber, verifyView } from '../src/checks';
import { check, verify } from './fixtures';

describe('one check as a checklist row', () => {
  it('says pass, fail and skipped in words as well as with a symbol', () => {
    expect(checkRow(check({ status: 'pass' }))).toMatchObject({ symbol: '✓', statusLabel: 'Passed' });
    expect(checkRow(check({ status: 'fail' }))).toMatchObject({ symbol: '✗', statusLabel: 'Failed' });
    expect(checkRow(check({ status: 'skipped' }))).toMatchObject({ symbol: '–', statusLabel: 'Skipped' });
  });

  it('keeps the reason a check was skipped', () => {
    const row = checkRow(check({ status: 'skipped', reason: 'No GPU is assigned to this server.' }));
    expect(row.reason).toBe('No GPU is assigned to this server.');
  });

  it('shows throughput and bandwidth with their units', () => {
    const row = checkRow(check({ details: { tflops: 312.5, bandwidth_gbps: 2950.123 } }));
    expect(row.details).toEqual([
      { label: 'throughput', value: '312.5 TFLOP/s' },
      { label: 'bandwidth', value: '2950 GB/s' }
    ]);
  });

  it('labels any other numeric detail with its key, and prefixed keys keep their prefix', () => {
    expect(detailItem('max_abs_error', 0.00001234)).toEqual({ label: 'max abs error', value: '1.23e-5' });
    expect(detailItem('device_count', 2)).toEqual({ label: 'device count', value: '2' });
    expect(detailItem('bf16_tflops', 801.234)).toEqual({ label: 'bf16', value: '801.2 TFLOP/s' });
    expect(detailItem('d2d_bandwidth_gbps', 3000)).toEqual({ label: 'd2d bandwidth', value: '3000 GB/s' });
    expect(detailItem('gflops', 2.12)).toEqual({ label: 'throughput', value: '2.12 GFLOP/s' });
    expect(detailItem('elapsed_seconds', 1.5)).toEqual({ label: 'elapsed', value: '1.5 s' });
    expect(detailItem('memory_bytes', 2 * 1024 ** 3)).toEqual({ label: 'memory', value: '2 GiB' });
  });

  it('shows strings and booleans but leaves out nested objects', () => {
    const row = checkRow(
      check({ details: { device: 'cuda:0', bf16: true, per_device: { a: 1 }, list: [1, 2] } })
    );
    expect(row.details).toEqual([
      { label: 'device', value: 'cuda:0' },
      { label: 'bf16', value: 'yes' }
    ]);
  });

  it('treats a status it does not know as a failure', () => {
    expect(checkRow(check({ status: 'maybe' as never })).status).toBe('fail');
  });

  it('formats numbers to four significant digits', () => {
    expect(formatDetailNumber(312.5678)).toBe('312.6');
    expect(formatDetailNumber(0.25)).toBe('0.25');
    expect(formatDetailNumber(12)).toBe('12');
  });
});

describe('the verification section', () => {
  it('says when it has not run yet', () => {
    const view = verifyView(
      verify({ state: 'never_run', started_at: null, finished_at: null, summary: null, checks: [] }),
      2000
    );
    expect(view.headline).toBe('Verification has not run yet.');
    expect(view.lastRun).toBe('');
    expect(view.lastRunAt).toBeNull();
  });

  it('shows a running verification as busy, with when it started', () => {
    const view = verifyView(verify({ state: 'running', started_at: 1990, finished_at: null, summary: null }), 2000);
    expect(view.running).toBe(true);
    expect(view.tone).toBe('busy');
    expect(view.lastRun).toBe('Started 10 s ago');
  });

  it('gives the time of the last run and how long it took', () => {
    const view = verifyView(verify({ started_at: 1000, finished_at: 1004.2 }), 1004.2 + 150);
    expect(view.headline).toBe('All checks passed.');
    expect(view.lastRun).toBe('Last run 2 min ago, took 4.2 s');
    expect(view.lastRunAt).toBe(1004.2);
  });

  it('counts the failed checks', () => {
    const view = verifyView(
      verify({
        summary: 'fail',
        checks: [check({ status: 'fail' }), check({ id: 'b' }), check({ id: 'c', status: 'fail' })]
      }),
      2000
    );
    expect(view.headline).toBe('2 of 3 checks failed.');
    expect(view.tone).toBe('error');
  });

  it('does not call a CPU-only container a failure', () => {
    const view = verifyView(
      verify({
        summary: 'no_gpu',
        message: 'No GPU assigned.',
        checks: [check(), check({ id: 'cuda', status: 'skipped', reason: 'No GPU.' })]
      }),
      2000
    );
    expect(view.headline).toBe('No GPU assigned: the checks that need one were skipped.');
    expect(view.tone).toBe('info');
    expect(view.message).toBe('No GPU assigned.');
  });

  it('lists the library versions, saying which are missing', () => {
    const view = verifyView(verify({ versions: { torch: '2.13.0', cuda: null, cudnn: null, nccl: null } }), 2000);
    expect(view.versions).toEqual([
      { label: 'PyTorch', value: '2.13.0' },
      { label: 'CUDA runtime', value: 'not available' },
      { label: 'cuDNN', value: 'not available' },
      { label: 'NCCL', value: 'not available' }
    ]);
  });
});
