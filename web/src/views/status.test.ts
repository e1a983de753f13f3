import { describe, expect, it } from 'vitest';
import { formatNumber, formatSeconds } from './status';

describe('formatNumber', () => {
  it('shows two decimals for small numbers, fewer for large ones, a dash for none', () => {
    expect(formatNumber(0)).toBe('0');
    expect(formatNumber(0.5)).toBe('0.50');
    expect(formatNumber(12.345)).toBe('12.3');
    expect(formatNumber(1234.5)).toBe('1,235');
    expect(formatNumber(3, 0)).toBe('3');
    expect(formatNumber(null)).toBe('–');
    expect(formatNumber(NaN)).toBe('–');
  });
});

describe('formatSeconds', () => {
  it('says seconds, or minutes and seconds', () => {
    expect(formatSeconds(1.25)).toBe('1.3 s');
    expect(formatSeconds(42)).toBe('42 s');
    expect(formatSeconds(185)).toBe('3 min 5 s');
  });
});
