/**
 * Words for the owner's GPU-hours (the hub's usage record): pure functions of the status
 * document, so the panel and the unit tests agree on them.
 */
import type { StatusResponse, UsageFigures } from './types';

/** The figures in the status document, or null (none sent yet, or an older server). */
export function usageFigures(status: StatusResponse | null): UsageFigures | null {
  const usage = status?.usage;
  if (!usage || !Number.isFinite(usage.week_hours) || !Number.isFinite(usage.month_hours)) {
    return null;
  }
  return usage;
}

/** "Your GPU use: 1.25 GPU-hours this week, 10.00 this month." */
export function usageSentence(usage: UsageFigures): string {
  return (
    `Your GPU use: ${usage.week_hours.toFixed(2)} GPU-hours this week, ` +
    `${usage.month_hours.toFixed(2)} this month.`
  );
}
