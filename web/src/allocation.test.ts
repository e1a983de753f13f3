import { describe, expect, it } from 'vitest';
import {
  WHOLE,
  evenSplit,
  formatDifference,
  formatHundredths,
  fromPercentage,
  isComplete,
  parsePercentage,
  remaining,
  toPercentage,
  total,
} from './allocation';

describe('parsePercentage', () => {
  it.each([
    ['0', 0],
    ['', 0],
    ['  ', 0],
    ['7', 700],
    ['12.5', 1250],
    ['12.50', 1250],
    ['0.07', 7],
    ['.5', 50],
    ['5.', 500],
    ['12,25', 1225],
    ['100', 10_000],
    ['100.00', 10_000],
    ['007.10', 710],
    [' 33.34 ', 3334],
  ])('reads %j as %i hundredths', (text, hundredths) => {
    expect(parsePercentage(text)).toEqual({ ok: true, hundredths });
  });

  it.each([
    ['12.345', 'too-many-decimals'],
    ['0.001', 'too-many-decimals'],
    ['100.01', 'out-of-range'],
    ['101', 'out-of-range'],
    ['1000', 'out-of-range'],
    ['-1', 'out-of-range'],
    ['abc', 'not-a-number'],
    ['1e2', 'not-a-number'],
    ['.', 'not-a-number'],
    ['1.2.3', 'not-a-number'],
    ['12 %', 'not-a-number'],
  ])('refuses %j (%s)', (text, problem) => {
    expect(parsePercentage(text)).toEqual({ ok: false, problem });
  });
});

describe('formatting', () => {
  it('prints two decimals from hundredths', () => {
    expect(formatHundredths(0)).toBe('0.00');
    expect(formatHundredths(7)).toBe('0.07');
    expect(formatHundredths(1250)).toBe('12.50');
    expect(formatHundredths(10_000)).toBe('100.00');
    expect(formatHundredths(-1)).toBe('-0.01');
  });

  it('signs differences', () => {
    expect(formatDifference(250)).toBe('+2.50');
    expect(formatDifference(-125)).toBe('\u22121.25');
    expect(formatDifference(0)).toBe('0.00');
  });

  it('round-trips API floats without drift', () => {
    for (let h = 0; h <= WHOLE; h++) {
      expect(fromPercentage(toPercentage(h))).toBe(h);
    }
  });
});

describe('running total', () => {
  it('adds up and says what remains', () => {
    const values = [2500, 2500, 1234];
    expect(total(values)).toBe(6234);
    expect(remaining(values)).toBe(3766);
    expect(formatHundredths(remaining(values))).toBe('37.66');
  });

  it('goes negative when over 100', () => {
    expect(remaining([6000, 5000])).toBe(-1000);
  });

  it('is complete only at exactly 100.00', () => {
    expect(isComplete([5000, 5000])).toBe(true);
    expect(isComplete([5000, 4999])).toBe(false);
    expect(isComplete([5000, 5001])).toBe(false);
    expect(isComplete([9999])).toBe(false);
    expect(isComplete([])).toBe(false);
  });
});

describe('evenSplit', () => {
  it('gives ten categories 10.00 each', () => {
    expect(evenSplit(10)).toEqual(Array(10).fill(1000));
  });

  it('puts the remainder on the first categories', () => {
    expect(evenSplit(3)).toEqual([3334, 3333, 3333]);
    expect(evenSplit(7).map(formatHundredths)).toEqual(['14.29', '14.29', '14.29', '14.29', '14.28', '14.28', '14.28']);
  });

  it('adds up to exactly 100.00 for every count, with shares one hundredth apart at most', () => {
    for (let count = 1; count <= 200; count++) {
      const split = evenSplit(count);
      expect(split).toHaveLength(count);
      expect(total(split)).toBe(WHOLE);
      expect(isComplete(split)).toBe(true);
      expect(Math.max(...split) - Math.min(...split)).toBeLessThanOrEqual(1);
    }
  });

  it('has nothing to split over no categories', () => {
    expect(evenSplit(0)).toEqual([]);
    expect(evenSplit(-2)).toEqual([]);
  });
});
