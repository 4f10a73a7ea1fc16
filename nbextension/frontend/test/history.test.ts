import { describe, expect, it } from 'vitest';

import { appendSample, emptyHistory, historyFromServer } from '../src/history';
import { gpu } from './fixtures';

describe('history', () => {
  it("takes the server's history, padding a missing series with gaps", () => {
    const history = historyFromServer({ t: [1, 2], utilization_gpu: [10, 20], temperature: [50] });
    expect(history.t).toEqual([1, 2]);
    expect(history.utilization_gpu).toEqual([10, 20]);
    expect(history.temperature).toEqual([50, null]);
    expect(history.power_draw).toEqual([null, null]);
  });

  it('appends each newer polled sample', () => {
    let history = historyFromServer({ t: [1], utilization_gpu: [10], memory_used: [1], temperature: [40], power_draw: [100] });
    history = appendSample(history, 2, gpu({ utilization_gpu: 55, power_draw: null }));
    expect(history.t).toEqual([1, 2]);
    expect(history.utilization_gpu).toEqual([10, 55]);
    expect(history.power_draw).toEqual([100, null]);
  });

  it('ignores a sample no newer than the last point, so fast polling adds no duplicates', () => {
    const history = appendSample(emptyHistory(), 5, gpu());
    expect(appendSample(history, 5, gpu())).toBe(history);
    expect(appendSample(history, 4, gpu()).t).toEqual([5]);
  });

  it('keeps only the window of time asked for', () => {
    let history = emptyHistory();
    for (let t = 0; t <= 400; t += 100) {
      history = appendSample(history, t, gpu({ utilization_gpu: t / 10 }), 250);
    }
    expect(history.t).toEqual([200, 300, 400]);
    expect(history.utilization_gpu).toEqual([20, 30, 40]);
  });
});
