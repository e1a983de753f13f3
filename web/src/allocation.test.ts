import { describe, expect, it } from 'vitest';
import {
  WHOLE,
  describeLargest,
  evenSplit,
  formatDifference,
  formatHundredths,
  fromPercentage,
  headline,
  isComplete,
  parsePercentage,
  remaining,
  spreadRest,
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
    ['5%', 500],
    ['12.5 %', 1250],
    ['2,5%', 250],
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
    ['%', 'not-a-number'],
    ['5%%', 'not-a-number'],
    ['150', 'out-of-range'],
    ['150%', 'out-of-range'],
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

describe('spreadRest', () => {
  it('spreads the whole evenly when nothing is locked, as evenSplit does', () => {
    expect(spreadRest([0, 0, 0], [false, false, false])).toEqual(evenSplit(3));
  });

  it('keeps locked values and shares the rest exactly, remainders first', () => {
    const spread = spreadRest([2500, 1, 1, 4000], [true, false, false, true]);
    expect(spread).toEqual([2500, 1750, 1750, 4000]);
    const odd = spreadRest([3333, 0, 0, 0], [true, false, false, false]);
    expect(odd).toEqual([3333, 2223, 2222, 2222]);
    expect(total(odd ?? [])).toBe(WHOLE);
  });

  it('adds up to exactly 100 for every lock pattern of ten categories', () => {
    const values = [1234, 5, 999, 0, 4321, 7, 1, 0, 250, 333];
    for (let mask = 0; mask < 1 << values.length; mask++) {
      const locked = values.map((_, index) => Boolean(mask & (1 << index)));
      const spread = spreadRest(values, locked);
      if (spread === null) {
        expect(locked.every(Boolean) || total(values.filter((_, i) => locked[i])) > WHOLE).toBe(true);
        continue;
      }
      expect(total(spread)).toBe(WHOLE);
      spread.forEach((value, index) => {
        if (locked[index]) expect(value).toBe(values[index]);
        expect(Number.isInteger(value) && value >= 0).toBe(true);
      });
    }
  });

  it('refuses when nothing is unlocked or the locked ones pass 100', () => {
    expect(spreadRest([5000, 5000], [true, true])).toBeNull();
    expect(spreadRest([6000, 5000, 0], [true, true, false])).toBeNull();
  });
});

describe('describeLargest', () => {
  const shares = (values: number[]) => values.map((hundredths, i) => ({ name: `C${i + 1}`, hundredths }));

  it('names the three largest', () => {
    expect(describeLargest(shares([2500, 2000, 500, 1500, 3500]))).toBe('Largest: C5 35.00 %, C1 25.00 %, C2 20.00 %');
  });

  it('calls an even split what it is instead of naming three arbitrary categories', () => {
    expect(describeLargest(shares(evenSplit(10)))).toBe('Even split: 10 categories at 10.00 % each');
  });

  it('names ties as ties', () => {
    expect(describeLargest(shares([3000, 2000, 2000, 3000]))).toBe(
      'Largest: C1 and C4 tied at 30.00 %, C2 and C3 tied at 20.00 %',
    );
    expect(describeLargest(shares([2500, 1500, 1500, 1500, 1500, 1500]))).toBe(
      'Largest: C1 25.00 %, 5 categories tied at 15.00 %',
    );
    expect(describeLargest(shares([10_000, 0, 0]))).toBe('Largest: C1 100.00 %');
  });
});

describe('headline', () => {
  const row = (name: string, mine: number, average: number) => ({ name, mine, average });

  it('names the largest differences above and below the average', () => {
    expect(headline([row('Defense', 500, 1000), row('Healthcare', 3000, 2700), row('Other', 1000, 1000)])).toBe(
      'You gave Defense 5.00 points less than the average, and Healthcare 3.00 points more.',
    );
  });

  it('says when the split is the average', () => {
    expect(headline([row('A', 5000, 5000), row('B', 5000, 5000)])).toBe(
      'Your split matches the national average exactly.',
    );
  });

  it('names ties together and uses the singular for one point', () => {
    expect(headline([row('A', 4000, 5000), row('B', 4000, 5000), row('C', 2000, 0)])).toBe(
      'You gave A and B 10.00 points less than the average, and C 20.00 points more.',
    );
    expect(headline([row('A', 4900, 5000), row('B', 5100, 5000)])).toBe(
      'You gave A 1.00 point less than the average, and B 1.00 point more.',
    );
  });
});
