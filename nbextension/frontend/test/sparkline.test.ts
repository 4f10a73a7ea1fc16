import { describe, expect, it } from 'vitest';

import { sparklinePath } from '../src/sparkline';

describe('sparkline path', () => {
  it('draws the range minimum at the bottom and the maximum at the top', () => {
    expect(sparklinePath([0, 50, 100], 100, 10, { min: 0, max: 100 })).toBe('M0,10L50,5L100,0');
  });

  it('scales to the data when no range is given', () => {
    expect(sparklinePath([20, 40], 10, 10)).toBe('M0,10L10,0');
  });

  it('breaks the line where a value is missing', () => {
    const path = sparklinePath([10, 20, null, 30, 40], 40, 10, { min: 0, max: 40 });
    expect(path).toBe('M0,7.5L10,5M30,2.5L40,0');
  });

  it('draws a lone value between gaps as a short dash so it stays visible', () => {
    const path = sparklinePath([null, 50, null], 20, 10, { min: 0, max: 100 });
    expect(path).toBe('M5,5L15,5');
  });

  it('keeps a flat series in the middle instead of dividing by zero', () => {
    expect(sparklinePath([7, 7, 7], 20, 10)).toBe('M0,5L10,5L20,5');
  });

  it('clamps values outside the range to the edges', () => {
    expect(sparklinePath([-5, 150], 10, 10, { min: 0, max: 100 })).toBe('M0,10L10,0');
  });

  it('draws nothing without values', () => {
    expect(sparklinePath([], 10, 10)).toBe('');
    expect(sparklinePath([null, null], 10, 10)).toBe('');
  });
});
