/**
 * What the panel says when something is not simply "here are your GPUs": the backend's
 * state, or a failure to talk to the server extension at all. Pure functions.
 */
import type { GpuState, StatusResponse } from './types';

/** Why a request to the API failed, as far as the browser can tell. */
export type ProblemKind = 'not_found' | 'forbidden' | 'server' | 'network';

export interface FetchProblem {
  kind: ProblemKind;
  /** HTTP status, null when no response arrived. */
  status: number | null;
  /** The server's `message`, or the network error's text. */
  detail: string;
}

/** Classify a failed request by its HTTP status (null: no response at all). */
export function classifyFailure(status: number | null, detail = ''): FetchProblem {
  if (status === null || status === 0) {
    return { kind: 'network', status: null, detail };
  }
  if (status === 404) {
    return { kind: 'not_found', status, detail };
  }
  if (status === 401 || status === 403) {
    return { kind: 'forbidden', status, detail };
  }
  return { kind: 'server', status, detail };
}

/** Whether polling again could help: a missing extension or a refusal will not go away. */
export function isRetryable(problem: FetchProblem): boolean {
  return problem.kind === 'server' || problem.kind === 'network';
}

function retryClause(retryInSeconds: number | null): string {
  return retryInSeconds === null ? '' : ` Retrying in ${Math.round(retryInSeconds)} s.`;
}

/** One or two sentences for the user: what happened and what to do next. */
export function problemSentence(problem: FetchProblem, retryInSeconds: number | null): string {
  const detail = problem.detail.trim().replace(/\.$/, '');
  switch (problem.kind) {
    case 'not_found':
      return (
        'The GPU status service is missing on this server (HTTP 404): the cudaspawner ' +
        'server extension is not installed or not enabled. Ask your administrator to add it ' +
        'to the notebook image.'
      );
    case 'forbidden':
      return (
        `You are not allowed to read GPU status on this server (HTTP ${problem.status}). ` +
        'Reload the page to sign in again; if that does not help, ask your administrator.'
      );
    case 'server':
      return (
        `The GPU status service failed (HTTP ${problem.status}${detail ? `: ${detail}` : ''}).` +
        retryClause(retryInSeconds)
      );
    case 'network':
      return (
        `Could not reach the Jupyter server${detail ? ` (${detail})` : ''}.` +
        retryClause(retryInSeconds)
      );
  }
}

const DEFAULT_SENTENCES: Record<GpuState, string> = {
  ok: '',
  no_gpu: 'No GPU is assigned to this server.',
  library_not_found:
    'The NVIDIA management library (NVML) was not found in this container, so GPU status ' +
    'cannot be read.',
  driver_not_loaded: 'The NVIDIA driver is not loaded, so GPU status cannot be read.',
  no_devices: 'The NVIDIA driver reports no GPU devices.',
  no_permission: 'This server is not permitted to read the GPUs.',
  error: 'Reading the GPU status failed.'
};

const NEXT_STEPS: Record<GpuState, string> = {
  ok: '',
  no_gpu:
    'To use a GPU, stop this server from the Hub Control Panel and start it again with a ' +
    'GPU profile.',
  library_not_found: 'If you expected a GPU here, tell your administrator what this panel says.',
  driver_not_loaded: 'If you expected a GPU here, tell your administrator what this panel says.',
  no_devices: 'If you expected a GPU here, tell your administrator what this panel says.',
  no_permission: 'If you expected a GPU here, tell your administrator what this panel says.',
  error: 'If this persists, tell your administrator what this panel says.'
};

export interface StateView {
  /** The server's sentence (or ours when it sent none); empty when all is well. */
  sentence: string;
  /** What the user can do about it. */
  nextStep: string;
  /** How alarming it looks: no GPU is a fact, a missing driver is a fault. */
  tone: 'ok' | 'info' | 'error';
}

/** The backend's state as the panel shows it. */
export function stateView(status: StatusResponse): StateView {
  if (status.state === 'ok' && status.gpus.length === 0) {
    return {
      sentence: status.message || 'No GPU is visible to this server.',
      nextStep: NEXT_STEPS.no_gpu,
      tone: 'info'
    };
  }
  const known = status.state in DEFAULT_SENTENCES;
  const state: GpuState = known ? status.state : 'error';
  if (state === 'ok') {
    return { sentence: '', nextStep: '', tone: 'ok' };
  }
  return {
    sentence: status.message || DEFAULT_SENTENCES[state],
    nextStep: NEXT_STEPS[state],
    tone: state === 'no_gpu' ? 'info' : 'error'
  };
}
