import { describe, expect, it } from 'vitest';

import { classifyFailure, isRetryable, problemSentence, stateView } from '../src/states';
import { status } from './fixtures';

describe('failed requests', () => {
  it('tells a missing extension, a refusal, a server error and no answer apart', () => {
    expect(classifyFailure(404).kind).toBe('not_found');
    expect(classifyFailure(403).kind).toBe('forbidden');
    expect(classifyFailure(401).kind).toBe('forbidden');
    expect(classifyFailure(500, 'boom').kind).toBe('server');
    expect(classifyFailure(null, 'Failed to fetch').kind).toBe('network');
  });

  it('retries only what may go away by itself', () => {
    expect(isRetryable(classifyFailure(500))).toBe(true);
    expect(isRetryable(classifyFailure(null))).toBe(true);
    expect(isRetryable(classifyFailure(404))).toBe(false);
    expect(isRetryable(classifyFailure(403))).toBe(false);
  });

  it('explains a 404 as a missing server extension and says whom to ask', () => {
    const sentence = problemSentence(classifyFailure(404, 'Not Found'), null);
    expect(sentence).toContain('HTTP 404');
    expect(sentence).toContain('server extension is not installed');
    expect(sentence).toContain('administrator');
    expect(sentence).not.toContain('Retrying');
  });

  it('names the HTTP status, the server message and when it retries for a server error', () => {
    const sentence = problemSentence(classifyFailure(500, 'NVML call failed.'), 8);
    expect(sentence).toBe('The GPU status service failed (HTTP 500: NVML call failed). Retrying in 8 s.');
  });

  it('says the Jupyter server could not be reached when no response came', () => {
    expect(problemSentence(classifyFailure(null, 'Failed to fetch'), 4)).toBe(
      'Could not reach the Jupyter server (Failed to fetch). Retrying in 4 s.'
    );
  });

  it('asks the user to sign in again on a refusal', () => {
    expect(problemSentence(classifyFailure(403), null)).toContain('Reload the page');
  });
});

describe('backend states', () => {
  it("shows the server's own message for any state but ok", () => {
    for (const state of ['no_gpu', 'library_not_found', 'driver_not_loaded', 'no_devices', 'no_permission', 'error'] as const) {
      const view = stateView(status({ state, message: `Server says ${state}.`, gpus: [] }));
      expect(view.sentence).toBe(`Server says ${state}.`);
      expect(view.nextStep).not.toBe('');
    }
  });

  it('falls back to its own sentence when the server sent none', () => {
    expect(stateView(status({ state: 'no_gpu', gpus: [] })).sentence).toBe(
      'No GPU is assigned to this server.'
    );
    expect(stateView(status({ state: 'driver_not_loaded', gpus: [] })).sentence).toContain(
      'driver is not loaded'
    );
  });

  it('treats no GPU as information and a broken driver as an error', () => {
    expect(stateView(status({ state: 'no_gpu', gpus: [] })).tone).toBe('info');
    expect(stateView(status({ state: 'library_not_found', gpus: [] })).tone).toBe('error');
  });

  it('treats a state it does not know as an error rather than as fine', () => {
    const view = stateView(status({ state: 'melted' as never, gpus: [] }));
    expect(view.tone).toBe('error');
    expect(view.sentence).toBe('Reading the GPU status failed.');
  });

  it('says nothing when all is well, and explains an empty GPU list', () => {
    expect(stateView(status()).sentence).toBe('');
    expect(stateView(status({ gpus: [] })).sentence).toBe('No GPU is visible to this server.');
  });
});
