import { describe, expect, it } from 'vitest';

import type { StatusResponse } from '../src/types';
import { usageFigures, usageSentence } from '../src/usage';

const base = { state: 'ok', gpus: [] } as unknown as StatusResponse;

describe('the owner GPU-hours in the panel', () => {
  it('says this week and this month to two decimals', () => {
    const usage = { week_hours: 1.256, month_hours: 10, warnings: [], updated_at: 1 };
    expect(usageSentence(usage)).toBe('Your GPU use: 1.26 GPU-hours this week, 10.00 this month.');
  });

  it('shows nothing until the hub has sent figures, or when they are not numbers', () => {
    expect(usageFigures(base)).toBeNull();
    expect(usageFigures({ ...base, usage: null })).toBeNull();
    const broken = { week_hours: NaN, month_hours: 1, warnings: [], updated_at: 1 };
    expect(usageFigures({ ...base, usage: broken })).toBeNull();
    const fine = { week_hours: 0, month_hours: 1, warnings: ['over'], updated_at: 1 };
    expect(usageFigures({ ...base, usage: fine })).toEqual(fine);
  });
});
