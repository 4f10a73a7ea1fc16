import { describe, expect, it } from 'vitest';

import { cardView, foreignProcessesText, SLICE_UTILISATION } from '../src/gpuview';
import { GiB, gpu, MiB } from './fixtures';

describe('processes outside this container', () => {
  it('counts them and the memory they use', () => {
    expect(foreignProcessesText({ count: 3, memory_used: 6.5 * GiB })).toBe(
      '3 processes outside this container use 6.5 GiB'
    );
    expect(foreignProcessesText({ count: 1, memory_used: 512 * MiB })).toBe(
      '1 process outside this container uses 512 MiB'
    );
  });

  it('says so when there are none', () => {
    expect(foreignProcessesText({ count: 0, memory_used: 0 })).toBe('No processes outside this container');
    expect(foreignProcessesText(undefined)).toBe('No processes outside this container');
  });
});

describe('a GPU card', () => {
  it('shows the four charted metrics with ranges fixed by the hardware', () => {
    const view = cardView(gpu());
    expect(view.title).toBe('GPU 0: NVIDIA H100 80GB HBM3');
    expect(view.metrics.map(m => [m.label, m.value])).toEqual([
      ['Utilisation', '37%'],
      ['Memory', '11.2/80 GiB'],
      ['Temperature', '54 °C'],
      ['Power', '215/700 W']
    ]);
    expect(view.metrics[1].range).toEqual({ min: 0, max: 80 * GiB });
  });

  it('leaves out the extra fields the GPU does not report', () => {
    const labels = cardView(gpu({ fan: null, clock_memory: null })).extras.map(e => e.label);
    expect(labels).toEqual(['Memory utilisation', 'SM clock', 'PCIe']);
  });

  it("lists this container's processes with their memory", () => {
    const view = cardView(
      gpu({ processes: [{ pid: 42, command: 'python train.py', memory_used: 2 * GiB }] })
    );
    expect(view.processes).toEqual([{ pid: '42', command: 'python train.py', memory: '2 GiB' }]);
  });

  it('lists MIG instances with their memory', () => {
    const view = cardView(
      gpu({ mig: [{ index: 0, uuid: 'MIG-1', name: '1g.10gb', memory_used: GiB, memory_total: 10 * GiB }] })
    );
    expect(view.mig).toEqual([{ name: '1g.10gb', memory: '1/10 GiB' }]);
  });

  it('shows a MIG slice given to the server by its memory, never its GPU\'s utilisation', () => {
    const view = cardView(
      gpu({ uuid: 'MIG-1', name: '1g.10gb', slice_of: 'NVIDIA H100 80GB HBM3', utilization_gpu: null,
            memory_used: GiB, memory_total: 10 * GiB, temperature: null, power_draw: null })
    );
    expect(view.title).toBe('GPU 0: MIG slice 1g.10gb');
    expect(view.metrics.map(m => [m.label, m.value])).toEqual([['Memory', '1/10 GiB']]);
    expect(view.extras).toEqual([
      { label: 'Slice of', value: 'NVIDIA H100 80GB HBM3' },
      { label: 'Utilisation', value: SLICE_UTILISATION }
    ]);
  });
});
