/**
 * One GPU card's content as plain data: what the panel writes into the DOM. Pure.
 */
import {
  formatBytes,
  formatClock,
  formatMemory,
  formatPcie,
  formatPercent,
  formatPower,
  formatTemperature,
  MISSING
} from './format';
import type { SparklineRange } from './sparkline';
import type { Gpu, HistoryMetric } from './types';

export interface MetricView {
  metric: HistoryMetric;
  label: string;
  value: string;
  /** The sparkline's vertical range: fixed where the metric has natural bounds. */
  range: SparklineRange;
}

export interface ProcessRow {
  pid: string;
  command: string;
  memory: string;
}

export interface CardView {
  title: string;
  metrics: MetricView[];
  extras: { label: string; value: string }[];
  processes: ProcessRow[];
  /** "No processes of this container use this GPU." when the list is empty. */
  processesEmpty: string;
  foreign: string;
  mig: { name: string; memory: string }[];
}

/** "2 processes outside this container use 3.1 GiB" / "No processes outside this container". */
export function foreignProcessesText(foreign: Gpu['foreign_processes'] | null | undefined): string {
  const count = foreign?.count ?? 0;
  if (count <= 0) {
    return 'No processes outside this container';
  }
  const noun = count === 1 ? 'process' : 'processes';
  const text = `${count} ${noun} outside this container`;
  if (!foreign || !(foreign.memory_used > 0)) {
    return text;
  }
  return `${text} ${count === 1 ? 'uses' : 'use'} ${formatBytes(foreign.memory_used)}`;
}

/** What the panel says of a MIG slice's utilisation, which NVML does not report. */
export const SLICE_UTILISATION = 'not reported per MIG slice';

/** A MIG slice's card: its memory; NVML has no utilisation per slice, and the card's
 * temperature, power and clocks are shared with the other slices' users, so not shown. */
function sliceView(gpu: Gpu, base: Omit<CardView, 'title' | 'metrics' | 'extras'>): CardView {
  return {
    ...base,
    title: `GPU ${gpu.index}: MIG slice ${gpu.name}`,
    metrics: [
      {
        metric: 'memory_used',
        label: 'Memory',
        value: formatMemory(gpu.memory_used, gpu.memory_total),
        range: { min: 0, max: gpu.memory_total ?? null }
      }
    ],
    extras: [
      { label: 'Slice of', value: gpu.slice_of ?? MISSING },
      { label: 'Utilisation', value: SLICE_UTILISATION }
    ]
  };
}

export function cardView(gpu: Gpu): CardView {
  const processes = (gpu.processes ?? []).map(process => ({
    pid: String(process.pid),
    command: process.command || MISSING,
    memory: formatBytes(process.memory_used)
  }));
  const base = {
    processes,
    processesEmpty: 'No processes of this container use this GPU.',
    foreign: foreignProcessesText(gpu.foreign_processes),
    mig: (gpu.mig ?? []).map(instance => ({
      name: instance.name || `MIG ${instance.index}`,
      memory: formatMemory(instance.memory_used, instance.memory_total)
    }))
  };
  if (gpu.slice_of) {
    return sliceView(gpu, base);
  }
  const metrics: MetricView[] = [
    {
      metric: 'utilization_gpu',
      label: 'Utilisation',
      value: formatPercent(gpu.utilization_gpu),
      range: { min: 0, max: 100 }
    },
    {
      metric: 'memory_used',
      label: 'Memory',
      value: formatMemory(gpu.memory_used, gpu.memory_total),
      range: { min: 0, max: gpu.memory_total ?? null }
    },
    {
      metric: 'temperature',
      label: 'Temperature',
      value: formatTemperature(gpu.temperature),
      range: { min: 0, max: 100 }
    },
    {
      metric: 'power_draw',
      label: 'Power',
      value: formatPower(gpu.power_draw, gpu.power_limit),
      range: { min: 0, max: gpu.power_limit ?? null }
    }
  ];
  const extras = [
    { label: 'Memory utilisation', value: formatPercent(gpu.utilization_memory) },
    { label: 'SM clock', value: formatClock(gpu.clock_sm) },
    { label: 'Memory clock', value: formatClock(gpu.clock_memory) },
    { label: 'Fan', value: formatPercent(gpu.fan) },
    { label: 'PCIe', value: formatPcie(gpu.pcie_generation, gpu.pcie_width) }
  ].filter(extra => extra.value !== MISSING);
  return { ...base, title: `GPU ${gpu.index}: ${gpu.name}`, metrics, extras };
}
