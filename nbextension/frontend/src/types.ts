/**
 * The JSON shapes of the cudaspawner server extension's REST API (api/gpu/v1).
 *
 * Kept in one place so that the pure view logic and the HTTP client agree on them.
 */

/** Overall state of the GPU backend; anything but "ok" comes with a human `message`. */
export type GpuState =
  | 'ok'
  | 'no_gpu'
  | 'library_not_found'
  | 'driver_not_loaded'
  | 'no_devices'
  | 'no_permission'
  | 'error';

export interface GpuProcess {
  pid: number;
  command: string;
  memory_used: number | null;
}

export interface MigInstance {
  index: number;
  uuid: string;
  name: string;
  memory_used: number | null;
  memory_total: number | null;
}

export interface Gpu {
  index: number;
  uuid: string;
  name: string;
  utilization_gpu: number | null;
  utilization_memory: number | null;
  memory_used: number | null;
  memory_total: number | null;
  temperature: number | null;
  power_draw: number | null;
  power_limit: number | null;
  clock_sm: number | null;
  clock_memory: number | null;
  fan: number | null;
  pcie_generation: number | null;
  pcie_width: number | null;
  mig: MigInstance[] | null;
  processes: GpuProcess[];
  foreign_processes: { count: number; memory_used: number };
  /** A MIG slice given to this server: the name of its GPU (absent from older servers). */
  slice_of?: string | null;
}

/** The metrics the server keeps a history of, per GPU. */
export type HistoryMetric = 'utilization_gpu' | 'memory_used' | 'temperature' | 'power_draw';

export const HISTORY_METRICS: readonly HistoryMetric[] = [
  'utilization_gpu',
  'memory_used',
  'temperature',
  'power_draw'
];

/** Parallel arrays: `t` holds unix seconds, each metric one value (or null) per time. */
export type GpuHistory = { t: number[] } & Record<HistoryMetric, (number | null)[]>;

export interface StatusResponse {
  state: GpuState;
  message: string;
  backend: string;
  driver_version: string | null;
  cuda_driver_version: string | null;
  sampled_at: number | null;
  interval: number;
  gpus: Gpu[];
  /** Absent when requested with `?history=0`. */
  history?: Record<string, GpuHistory>;
  /** The idle-GPU notice of the hub's reclaim service; absent from older servers. */
  reclaim?: ReclaimNotice;
  /** The owner's GPU-hours as the hub's operations service last sent them; null until it has. */
  usage?: UsageFigures | null;
}

/** The owner's GPU-hours this week and this month, and the budget sentences that apply. */
export interface UsageFigures {
  week_hours: number;
  month_hours: number;
  warnings: string[];
  updated_at: number;
}

/** The reclaim service's warning: this server stops at `stop_at` unless its owner keeps it. */
export interface ReclaimWarning {
  stop_at: number;
  idle_seconds: number;
  seconds_left: number;
  message: string;
}

export interface ReclaimNotice {
  warning: ReclaimWarning | null;
  /** Unix seconds of the last "keep"; null if never pressed. */
  kept_at: number | null;
}

export type CheckStatus = 'pass' | 'fail' | 'skipped';

export interface VerifyCheck {
  id: string;
  title: string;
  status: CheckStatus;
  reason: string;
  details: Record<string, unknown>;
}

export interface VerifyResponse {
  state: 'never_run' | 'running' | 'done';
  started_at: number | null;
  finished_at: number | null;
  summary: null | 'pass' | 'fail' | 'no_gpu';
  message: string;
  checks: VerifyCheck[];
  versions: {
    torch: string | null;
    cuda: string | null;
    cudnn: string | null;
    nccl: string | null;
  };
  next_run_allowed_at: number | null;
}

/** A request that got no successful answer; `status` is null when none arrived at all. */
export class ApiError extends Error {
  constructor(
    readonly status: number | null,
    message: string
  ) {
    super(message);
  }
}

/** What the model needs from the server; an interface so tests can stand in for it. */
export interface GpuApi {
  status(withHistory: boolean): Promise<StatusResponse>;
  verify(): Promise<VerifyResponse>;
  runVerify(): Promise<VerifyResponse>;
  /** "Keep": the owner is still using the GPUs; counts as activity for the reclaim service. */
  keep(): Promise<ReclaimNotice>;
}
