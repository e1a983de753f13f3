import { describe, expect, it } from 'vitest';
import {
  BARS_BOTTOM,
  type Bucket,
  aboutShare,
  bars,
  bucketOf,
  describeHistogram,
  moreThanShare,
  rankSentence,
  statsLine,
} from './distribution';

/** Twenty ranges of five points, with these counts from the left. */
function buckets(counts: number[]): Bucket[] {
  return Array.from({ length: 20 }, (_, i) => ({ from: i * 5, to: (i + 1) * 5, count: counts[i] ?? 0 }));
}

describe('bucketOf', () => {
  it('finds the range that holds a percentage, the last one holding 100', () => {
    const twenty = buckets([]);
    expect(bucketOf(twenty, 0)).toBe(0);
    expect(bucketOf(twenty, 4.99)).toBe(0);
    expect(bucketOf(twenty, 5)).toBe(1);
    expect(bucketOf(twenty, 20)).toBe(4);
    expect(bucketOf(twenty, 99.99)).toBe(19);
    expect(bucketOf(twenty, 100)).toBe(19);
    expect(bucketOf([], 10)).toBe(-1);
  });
});

describe('bars', () => {
  it('puts each range at its percentage, the fullest reaching the top and empty ones flat', () => {
    const drawn = bars(buckets([2, 0, 4]));
    expect(drawn[0]).toEqual({ x: 0.2, y: BARS_BOTTOM - 12, width: 4.6, height: 12, count: 2 });
    expect(drawn[1]).toMatchObject({ x: 5.2, height: 0, y: BARS_BOTTOM });
    expect(drawn[2]).toMatchObject({ x: 10.2, height: 24, y: BARS_BOTTOM - 24 });
    expect(drawn).toHaveLength(20);
  });

  it('keeps a single citizen among many visible and draws nothing while nobody is counted', () => {
    expect(bars(buckets([10_000, 1]))[1]?.height).toBe(1.5);
    expect(bars(buckets([])).every((bar) => bar.height === 0)).toBe(true);
  });
});

describe('shares of citizens', () => {
  it('rounds "more than" down so it stays true, with decimals below one', () => {
    expect(moreThanShare(82.99)).toBe('82 %');
    expect(moreThanShare(50)).toBe('50 %');
    expect(moreThanShare(0.25)).toBe('0.25 %');
    expect(moreThanShare(99.99)).toBe('99 %');
  });

  it('rounds "like" to the nearest, but never to 0 or 100 when it is neither', () => {
    expect(aboutShare(24.6)).toBe('25 %');
    expect(aboutShare(0.4)).toBe('0.4 %');
    expect(aboutShare(99.7)).toBe('99 %');
    expect(aboutShare(100)).toBe('100 %');
  });
});

describe('rankSentence', () => {
  const base = { name: 'Defense', mine: 20, rank: 82.35, zeroShare: 10, median: 10 };

  it('says how many citizens gave less', () => {
    expect(rankSentence(base)).toBe('You gave Defense more than 82 % of citizens.');
  });

  it('names the median when the visitor gave it', () => {
    expect(rankSentence({ ...base, rank: 50, median: 20 })).toBe(
      'You gave Defense more than 50 % of citizens, the median share.',
    );
  });

  it('says nobody gave less instead of "more than 0 %", ties at the bottom included', () => {
    expect(rankSentence({ ...base, rank: 0 })).toBe('Nobody counted gave Defense less than you.');
    expect(rankSentence({ ...base, rank: 0, median: 20 })).toBe(
      'Nobody counted gave Defense less than you, the median share.',
    );
  });

  it('says nothing given with how many gave nothing too', () => {
    expect(rankSentence({ ...base, mine: 0, rank: 0, zeroShare: 25 })).toBe(
      'You gave Defense nothing, like 25 % of citizens.',
    );
    expect(rankSentence({ ...base, mine: 0, rank: 0, zeroShare: 100 })).toBe(
      'You gave Defense nothing, like every citizen counted.',
    );
    // Not counted yet, and nobody counted gave nothing.
    expect(rankSentence({ ...base, mine: 0, rank: 0, zeroShare: 0 })).toBe(
      'You gave Defense nothing; every citizen counted gave it more.',
    );
  });

  it('says "every citizen counted" before the visitor’s own submission is', () => {
    expect(rankSentence({ ...base, rank: 100 })).toBe('You gave Defense more than every citizen counted.');
  });

  it('says there is no comparison while nobody is counted', () => {
    expect(rankSentence({ ...base, rank: null, zeroShare: null, median: null })).toBe('No one to compare with yet.');
  });
});

describe('statsLine', () => {
  it('gives the median and the middle half', () => {
    expect(statsLine(10, { q1: 5, q3: 15.5 })).toBe('Median 10.00 % · middle half 5.00–15.50 %');
    expect(statsLine(10, { q1: 10, q3: 10 })).toBe('Median 10.00 % · middle half all at 10.00 %');
    expect(statsLine(null, null)).toBe('');
  });
});

describe('describeHistogram', () => {
  it('says where the shares lie, the fullest range and the visitor’s mark', () => {
    expect(describeHistogram('Defense', buckets([1, 0, 3, 1]), 5, 12.5)).toBe(
      'Defense: 5 citizens gave 0 to 20 %, counted in ranges of 5 points; the fullest, 10 to 15 %, holds 3 citizens; your 12.50 % is marked.',
    );
  });

  it('says how many ranges tie for the most, and when nobody is counted', () => {
    expect(describeHistogram('Defense', buckets([0, 1, 0, 1]), 2, 0)).toBe(
      'Defense: 2 citizens gave 5 to 20 %, counted in ranges of 5 points; 2 ranges tie for the most, 1 citizen each; your 0.00 % is marked.',
    );
    expect(describeHistogram('Defense', buckets([]), 0, 0)).toBe('Defense: nobody counted yet; your 0.00 % is marked.');
  });
});
