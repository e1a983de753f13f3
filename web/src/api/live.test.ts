import { describe, expect, it } from 'vitest';
import { retryDelay } from './live';

describe('retryDelay', () => {
  it('doubles from half a second and stops at five', () => {
    const middle = () => 0.5;
    expect([0, 1, 2, 3, 4, 10, 100].map((n) => retryDelay(n, middle))).toEqual([
      500, 1000, 2000, 4000, 5000, 5000, 5000,
    ]);
  });

  it('spreads clients by up to a quarter either way', () => {
    expect(retryDelay(1, () => 0)).toBe(750);
    expect(retryDelay(1, () => 0.999999)).toBe(1250);
  });
});
