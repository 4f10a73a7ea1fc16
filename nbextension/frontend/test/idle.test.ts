import { describe, expect, it } from 'vitest';

import { countdown, duration, idleSentence, idleStatusText, idleWarning } from '../src/idle';
import { status } from './fixtures';

const warning = { stop_at: 2000, idle_seconds: 900, seconds_left: 125.2, message: '' };

describe('idle-GPU warning', () => {
  it('counts down in minutes and seconds, hours past an hour, never below zero', () => {
    expect(countdown(125.2)).toBe('2:06');
    expect(countdown(59)).toBe('0:59');
    expect(countdown(3725)).toBe('1:02:05');
    expect(countdown(-3)).toBe('0:00');
  });

  it('says how long the GPUs were idle in words', () => {
    expect(duration(45)).toBe('45 s');
    expect(duration(900)).toBe('15 min');
    expect(duration(7500)).toBe('2 h 5 min');
  });

  it('tells the user the time left and the way out', () => {
    expect(idleSentence(warning)).toBe(
      'Your GPUs have been idle for 15 min. This server stops in 2:06 to free them for ' +
        'others, unless you keep it. Your files stay.'
    );
    expect(idleStatusText(warning)).toBe('GPU idle: stops in 2:06');
  });

  it("uses the service's own message when it sends one", () => {
    expect(idleSentence({ ...warning, message: 'Idle below 5% for 15 min.' })).toMatch(
      /^Idle below 5% for 15 min\. This server stops in 2:06/
    );
  });

  it('finds no warning in an older server or a cleared notice', () => {
    expect(idleWarning(status())).toBeNull();
    expect(idleWarning(status({ reclaim: { warning: null, kept_at: 5 } }))).toBeNull();
    expect(idleWarning(status({ reclaim: { warning, kept_at: null } }))).toEqual(warning);
  });
});
