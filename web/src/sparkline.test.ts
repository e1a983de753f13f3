import { describe, expect, it } from 'vitest';
import { HEIGHT, WIDTH, linePath, scaleMax } from './sparkline';

describe('scaleMax', () => {
  it('is the largest finite value, at least the floor', () => {
    expect(scaleMax([[0, 0.5, null]])).toBe(1);
    expect(scaleMax([[1, 7, null], [null, 12], [Infinity]])).toBe(12);
    expect(scaleMax([], 5)).toBe(5);
  });
});

describe('linePath', () => {
  it('puts the newest point at the right edge, zero at the bottom and the maximum at the top', () => {
    // Three slots: x = 0, 60, 120; y from 38 (zero) to 2 (max).
    expect(linePath([0, 5, 10], 3, 10)).toBe('M0 38L60 20L120 2');
    // Fewer values than slots: drawn from the right.
    expect(linePath([0, 10], 3, 10)).toBe('M60 38L120 2');
  });

  it('leaves gaps for nulls and draws a lone point as a short dash', () => {
    expect(linePath([1, null, 1, 1], 4, 1)).toBe('M0 2H0M80 2L120 2');
    expect(linePath([null, 2, null], 3, 4)).toBe('M30 20H60');
  });

  it('keeps values outside 0..max on the chart', () => {
    expect(linePath([-5, 50], 2, 10)).toBe(`M0 ${HEIGHT - 2}L${WIDTH} 2`);
  });
});
