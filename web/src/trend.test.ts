import { describe, expect, it } from 'vitest';
import type { TrendPoint } from './api/operations';
import {
  bucketStart,
  dotRadius,
  mergeSnapshot,
  movements,
  pointTime,
  rangeStart,
  rangeVariables,
  tickLabel,
  timeTicks,
  trendSummary,
} from './trend';

const NOW = Date.parse('2025-06-03T10:07:30Z');
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

function point(start: string, end: string, total: number, submissions: number, averages: number[]): TrendPoint {
  return {
    start,
    end,
    submissions,
    totalSubmissions: total,
    categories: averages.map((averagePercentage, i) => ({ category: { id: String(i + 1) }, averagePercentage })),
  };
}

function snapshot(total: number, updatedAt: string, averages: number[]) {
  return {
    totalSubmissions: total,
    updatedAt,
    categories: averages.map((averagePercentage, i) => ({
      category: { id: String(i + 1), slug: '', name: '', description: '', color: '', displayOrder: i },
      averagePercentage,
    })),
  };
}

describe('rangeVariables', () => {
  it('asks for minutes over the last hour, hours over the last day, days over all time', () => {
    expect(rangeVariables('hour', NOW)).toEqual({ bucket: 'MINUTE', from: '2025-06-03T09:07:30.000Z' });
    expect(rangeVariables('day', NOW)).toEqual({ bucket: 'HOUR', from: '2025-06-02T10:07:30.000Z' });
    expect(rangeVariables('all', NOW)).toEqual({ bucket: 'DAY' });
    expect(rangeStart('hour', NOW)).toBe(NOW - HOUR);
    expect(rangeStart('all', NOW)).toBeNull();
  });
});

describe('bucketStart', () => {
  it('cuts UTC minutes, hours and days', () => {
    expect(new Date(bucketStart(NOW, 'MINUTE')).toISOString()).toBe('2025-06-03T10:07:00.000Z');
    expect(new Date(bucketStart(NOW, 'HOUR')).toISOString()).toBe('2025-06-03T10:00:00.000Z');
    expect(new Date(bucketStart(NOW, 'DAY')).toISOString()).toBe('2025-06-03T00:00:00.000Z');
  });
});

describe('pointTime', () => {
  it('puts a point at its bucket’s end, or now while that is to come', () => {
    expect(pointTime({ end: '2025-06-03T10:00:00Z' }, NOW)).toBe(Date.parse('2025-06-03T10:00:00Z'));
    expect(pointTime({ end: '2025-06-04T00:00:00Z' }, NOW)).toBe(NOW);
  });
});

describe('mergeSnapshot', () => {
  const points = [
    point('2025-06-03T09:00:00Z', '2025-06-03T10:00:00Z', 4, 4, [60, 40]),
    point('2025-06-03T10:00:00Z', '2025-06-03T11:00:00Z', 6, 2, [50, 50]),
  ];

  it('updates the newest point when the snapshot falls in its bucket', () => {
    const merged = mergeSnapshot(points, snapshot(9, '2025-06-03T10:30:00Z', [40, 60]), 'HOUR', null);
    expect(merged).toHaveLength(2);
    expect(merged[1]).toEqual(point('2025-06-03T10:00:00Z', '2025-06-03T11:00:00Z', 9, 5, [40, 60]));
    expect(merged[0]).toBe(points[0]);
  });

  it('adds a point for a new bucket, counting only its own submissions', () => {
    const merged = mergeSnapshot(points, snapshot(7, '2025-06-03T11:00:05Z', [45, 55]), 'HOUR', null);
    expect(merged).toHaveLength(3);
    expect(merged[2]).toEqual({
      start: '2025-06-03T11:00:00.000Z',
      end: '2025-06-03T12:00:00.000Z',
      submissions: 1,
      totalSubmissions: 7,
      categories: [
        { category: { id: '1' }, averagePercentage: 45 },
        { category: { id: '2' }, averagePercentage: 55 },
      ],
    });
  });

  it('starts the first point of an empty range', () => {
    const merged = mergeSnapshot([], snapshot(1, '2025-06-03T10:07:30Z', [100, 0]), 'MINUTE', null);
    expect(merged).toHaveLength(1);
    expect(merged[0]).toMatchObject({ start: '2025-06-03T10:07:00.000Z', submissions: 1, totalSubmissions: 1 });
  });

  it('drops points that slid out of the range', () => {
    const from = Date.parse('2025-06-03T10:00:00Z');
    const merged = mergeSnapshot(points, snapshot(7, '2025-06-03T11:00:05Z', [45, 55]), 'HOUR', from);
    expect(merged.map((p) => p.start)).toEqual(['2025-06-03T10:00:00Z', '2025-06-03T11:00:00.000Z']);
  });

  it('changes nothing for a snapshot without new submissions', () => {
    expect(mergeSnapshot(points, snapshot(6, '2025-06-03T12:00:00Z', [1, 99]), 'HOUR', null)).toBe(points);
    expect(mergeSnapshot([], snapshot(0, '2025-06-03T12:00:00Z', [0, 0]), 'HOUR', null)).toEqual([]);
  });

  it('keeps a snapshot stamped before the newest point’s start in that point', () => {
    const merged = mergeSnapshot(points, snapshot(8, '2025-06-03T09:59:59Z', [48, 52]), 'HOUR', null);
    expect(merged).toHaveLength(2);
    expect(merged[1]?.totalSubmissions).toBe(8);
  });
});

describe('timeTicks', () => {
  it('puts ticks on round local times, no more than asked for', () => {
    const min = new Date(2025, 5, 3, 9, 7, 30).getTime();
    const max = new Date(2025, 5, 3, 10, 7, 30).getTime();
    const { step, values } = timeTicks(min, max, 8);
    expect(step).toBe(10 * MINUTE);
    expect(values[0]).toBe(new Date(2025, 5, 3, 9, 10).getTime());
    expect(values).toHaveLength(6);
    expect(values.every((v) => new Date(v).getMinutes() % 10 === 0 && v >= min && v <= max)).toBe(true);
  });

  it('steps by hours over a day and by local midnights over weeks', () => {
    const day = timeTicks(new Date(2025, 5, 2, 10, 7).getTime(), new Date(2025, 5, 3, 10, 7).getTime(), 5);
    expect(day.step).toBe(6 * HOUR);
    expect(day.values.map((v) => new Date(v).getHours())).toEqual([12, 18, 0, 6]);
    const weeks = timeTicks(new Date(2025, 5, 1, 13).getTime(), new Date(2025, 5, 20).getTime(), 4);
    expect(weeks.step).toBe(7 * 24 * HOUR);
    expect(weeks.values.map((v) => new Date(v).getDate())).toEqual([2, 9, 16]);
    expect(weeks.values.every((v) => new Date(v).getHours() === 0)).toBe(true);
  });

  it('steps by calendar months over years', () => {
    const { values } = timeTicks(new Date(2023, 0, 15).getTime(), new Date(2025, 0, 15).getTime(), 6);
    expect(values.map((v) => [new Date(v).getFullYear(), new Date(v).getMonth(), new Date(v).getDate()])).toEqual([
      [2023, 6, 1],
      [2024, 0, 1],
      [2024, 6, 1],
      [2025, 0, 1],
    ]);
  });
});

describe('tickLabel', () => {
  it('shows the time within a day, the date at midnight and for days, the month for months', () => {
    expect(tickLabel(new Date(2025, 5, 3, 9, 10).getTime(), 10 * MINUTE, 'en-GB')).toBe('09:10');
    expect(tickLabel(new Date(2025, 5, 4).getTime(), 6 * HOUR, 'en-GB')).toBe('4 Jun');
    expect(tickLabel(new Date(2025, 5, 9).getTime(), 7 * 24 * HOUR, 'en-GB')).toBe('9 Jun');
    expect(tickLabel(new Date(2025, 6, 1).getTime(), 91 * 24 * HOUR, 'en-GB')).toBe('Jul 2025');
  });
});

describe('dotRadius', () => {
  it('dots few points, smaller as they crowd, none past 40', () => {
    expect([1, 12, 13, 40, 41].map(dotRadius)).toEqual([3, 3, 2, 2, 0]);
  });
});

describe('movements and trendSummary', () => {
  const points = [
    point('2025-06-03T08:00:00Z', '2025-06-03T09:00:00Z', 4, 4, [60, 40]),
    point('2025-06-03T09:00:00Z', '2025-06-03T10:00:00Z', 6, 2, [62.5, 37.5]),
  ];
  const names = (id: string) => (id === '1' ? 'Healthcare' : 'Education');

  it('gives each category’s first and latest average in hundredths', () => {
    expect(movements(points)).toEqual([
      { id: '1', first: 6000, latest: 6250 },
      { id: '2', first: 4000, latest: 3750 },
    ]);
    expect(movements([])).toEqual([]);
  });

  it('says how many points over which times, the submissions, and what moved most', () => {
    const text = trendSummary('day', points, names, NOW);
    expect(text).toMatch(/^2 hourly points from .+ to .+; 6 submissions in all, 6 in this range\./);
    expect(text).toContain('Moved most: Healthcare, +2.50 points.');
    expect(trendSummary('hour', points.slice(0, 1), names, NOW)).toMatch(
      /^1 per-minute point, at .+; 4 submissions in all, 4 in this range\.$/,
    );
    expect(trendSummary('all', [], names, NOW)).toBe('No points to show.');
  });
});
