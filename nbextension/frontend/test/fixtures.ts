/** Builders for API responses, so each test states only what it is about. */
import type { VisibilitySource } from '../src/poller';
import type { Gpu, StatusResponse, VerifyCheck, VerifyResponse } from '../src/types';

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

export function gpu(overrides: Partial<Gpu> = {}): Gpu {
  return {
    index: 0,
    uuid: 'GPU-aaaa',
    name: 'NVIDIA H100 80GB HBM3',
    utilization_gpu: 37,
    utilization_memory: 12,
    memory_used: 11.2 * GiB,
    memory_total: 80 * GiB,
    temperature: 54,
    power_draw: 215.4,
    power_limit: 700,
    clock_sm: 1980,
    clock_memory: 2619,
    fan: null,
    pcie_generation: 5,
    pcie_width: 16,
    mig: null,
    processes: [],
    foreign_processes: { count: 0, memory_used: 0 },
    ...overrides
  };
}

export function status(overrides: Partial<StatusResponse> = {}): StatusResponse {
  return {
    state: 'ok',
    message: '',
    backend: 'simulated',
    driver_version: '550.54.15',
    cuda_driver_version: '12.4',
    sampled_at: 1000,
    interval: 1,
    gpus: [gpu()],
    ...overrides
  };
}

export function check(overrides: Partial<VerifyCheck> = {}): VerifyCheck {
  return { id: 'matmul', title: 'Matrix multiply', status: 'pass', reason: '', details: {}, ...overrides };
}

export function verify(overrides: Partial<VerifyResponse> = {}): VerifyResponse {
  return {
    state: 'done',
    started_at: 1000,
    finished_at: 1004.2,
    summary: 'pass',
    message: '',
    checks: [check()],
    versions: { torch: '2.13.0', cuda: '12.4', cudnn: '90100', nccl: '2.21.5' },
    next_run_allowed_at: null,
    ...overrides
  };
}

/** A page whose visibility the test switches. */
export class FakeVisibility implements VisibilitySource {
  hidden = false;
  private listeners = new Set<() => void>();
  isHidden(): boolean {
    return this.hidden;
  }
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  set(hidden: boolean): void {
    this.hidden = hidden;
    this.listeners.forEach(listener => listener());
  }
  get listenerCount(): number {
    return this.listeners.size;
  }
}
