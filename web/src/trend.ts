// The trends page's arithmetic, apart from the page so it can be tested: which query a range
// button sends, how a live snapshot updates or extends the newest point, and a time axis for
// Chart.js's linear scale (ticks on round local times, labels in the reader's language)
// without a date adapter as another dependency.

import { formatDifference } from './allocation';
import type { AggregateSnapshot, TrendPoint } from './api/operations';
import type { TrendBucket, TrendQueryVariables } from './api/generated/operations';
import { formatDateTime } from './dom';

export type Range = 'hour' | 'day' | 'all';

export const RANGES: readonly Range[] = ['hour', 'day', 'all'];

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export const BUCKET_MS: Record<TrendBucket, number> = { MINUTE, HOUR, DAY };

export const RANGE_INFO: Record<Range, { label: string; bucket: TrendBucket; spanMs: number | null; points: string }> =
  {
    hour: { label: 'Last hour', bucket: 'MINUTE', spanMs: HOUR, points: 'per-minute' },
    day: { label: 'Last day', bucket: 'HOUR', spanMs: DAY, points: 'hourly' },
    all: { label: 'All', bucket: 'DAY', spanMs: null, points: 'daily' },
  };

/** The variables of the TREND query for a range button pressed at `now` (ms). */
export function rangeVariables(range: Range, now: number): TrendQueryVariables {
  const { bucket, spanMs } = RANGE_INFO[range];
  return spanMs === null ? { bucket } : { bucket, from: new Date(now - spanMs).toISOString() };
}

/** Where the range starts (ms) at `now`; null: from the first point, whenever that was. */
export function rangeStart(range: Range, now: number): number | null {
  const { spanMs } = RANGE_INFO[range];
  return spanMs === null ? null : now - spanMs;
}

/** The start of the UTC bucket that holds `ms` (the server's buckets are UTC). */
export function bucketStart(ms: number, bucket: TrendBucket): number {
  const size = BUCKET_MS[bucket];
  return Math.floor(ms / size) * size;
}

/** Where a point goes on the time axis: the end of its bucket (the running average holds
 * there), or now while that end is still to come. */
export function pointTime(point: Pick<TrendPoint, 'end'>, now: number): number {
  return Math.min(Date.parse(point.end), now);
}

/**
 * The points with a newer live snapshot folded in: the bucket that holds the snapshot's time
 * gets its averages and counts (updated when it is the newest point, appended otherwise), and
 * points that have slid out of the range (ending at or before `from`) go. Unchanged (the same
 * array) when the snapshot counts no submission the points do not. A submission made just
 * before a bucket's end but folded after it lands in the next bucket here; the next read of
 * the range has it where the server put it.
 */
export function mergeSnapshot(
  points: readonly TrendPoint[],
  snapshot: Pick<AggregateSnapshot, 'totalSubmissions' | 'updatedAt' | 'categories'>,
  bucket: TrendBucket,
  from: number | null,
): readonly TrendPoint[] {
  const last = points[points.length - 1];
  const before = last?.totalSubmissions ?? 0;
  const at = Date.parse(snapshot.updatedAt);
  if (snapshot.totalSubmissions <= before || Number.isNaN(at)) return points;
  const categories = snapshot.categories.map((c) => ({
    category: { id: c.category.id },
    averagePercentage: c.averagePercentage,
  }));
  const start = bucketStart(at, bucket);
  let next: TrendPoint[];
  // A snapshot stamped before the newest point's start (clocks apart) still belongs to it.
  if (last && start <= Date.parse(last.start)) {
    next = [
      ...points.slice(0, -1),
      {
        ...last,
        submissions: last.submissions + snapshot.totalSubmissions - before,
        totalSubmissions: snapshot.totalSubmissions,
        categories,
      },
    ];
  } else {
    next = [
      ...points,
      {
        start: new Date(start).toISOString(),
        end: new Date(start + BUCKET_MS[bucket]).toISOString(),
        submissions: snapshot.totalSubmissions - before,
        totalSubmissions: snapshot.totalSubmissions,
        categories,
      },
    ];
  }
  return from === null ? next : next.filter((point) => Date.parse(point.end) > from);
}

/** Tick steps for the time axis, shortest first; `months` steps go by the calendar. */
const STEPS: readonly { ms: number; months?: number }[] = [
  { ms: MINUTE },
  { ms: 2 * MINUTE },
  { ms: 5 * MINUTE },
  { ms: 10 * MINUTE },
  { ms: 15 * MINUTE },
  { ms: 30 * MINUTE },
  { ms: HOUR },
  { ms: 2 * HOUR },
  { ms: 3 * HOUR },
  { ms: 6 * HOUR },
  { ms: 12 * HOUR },
  { ms: DAY },
  { ms: 2 * DAY },
  { ms: 7 * DAY },
  { ms: 14 * DAY },
  { ms: 30 * DAY, months: 1 },
  { ms: 91 * DAY, months: 3 },
  { ms: 182 * DAY, months: 6 },
  { ms: 365 * DAY, months: 12 },
];

export interface TimeTicks {
  /** The step's length in ms (a month counts as 30 days). */
  step: number;
  values: number[];
}

/**
 * At most `most` ticks between `min` and `max` (ms) on round local times: the shortest step
 * that fits, counted from local midnight (minutes and hours), from the first midnight in the
 * range (days), or from the first of a month (months).
 */
export function timeTicks(min: number, max: number, most: number): TimeTicks {
  const span = Math.max(0, max - min);
  const room = Math.max(1, most);
  const step = STEPS.find((s) => span / s.ms + 1 <= room) ?? STEPS[STEPS.length - 1]!;
  const values: number[] = [];
  const day = new Date(min);
  day.setHours(0, 0, 0, 0);
  if (step.months) {
    const month = new Date(day.getFullYear(), day.getMonth() - (day.getMonth() % step.months), 1);
    while (month.getTime() <= max) {
      if (month.getTime() >= min) values.push(month.getTime());
      month.setMonth(month.getMonth() + step.months);
    }
  } else if (step.ms >= DAY) {
    // From the first midnight in the range, so the first tick is near its start.
    if (day.getTime() < min) day.setDate(day.getDate() + 1);
    while (day.getTime() <= max) {
      values.push(day.getTime());
      day.setDate(day.getDate() + step.ms / DAY);
    }
  } else {
    const first = day.getTime() + Math.ceil((min - day.getTime()) / step.ms) * step.ms;
    for (let t = first; t <= max; t += step.ms) values.push(t);
  }
  return { step: step.ms, values };
}

/** A tick's label: the time of day for steps under a day (the date at midnight), the date
 * for days, the month for months. */
export function tickLabel(ms: number, step: number, locale?: string): string {
  const date = new Date(ms);
  const midnight = date.getHours() === 0 && date.getMinutes() === 0;
  if (step >= 30 * DAY) return date.toLocaleDateString(locale, { month: 'short', year: 'numeric' });
  if (step >= DAY || midnight) return date.toLocaleDateString(locale, { day: 'numeric', month: 'short' });
  return date.toLocaleTimeString(locale, { timeStyle: 'short' });
}

/** One category's first and latest average in the shown points, in hundredths. */
export interface Movement {
  id: string;
  first: number;
  latest: number;
}

/** Per category, the average after the first and after the latest point shown. */
export function movements(points: readonly TrendPoint[]): Movement[] {
  const first = points[0];
  const last = points[points.length - 1];
  if (!first || !last) return [];
  const firstById = new Map(first.categories.map((c) => [c.category.id, Math.round(c.averagePercentage * 100)]));
  return last.categories.map((c) => {
    const latest = Math.round(c.averagePercentage * 100);
    return { id: c.category.id, first: firstById.get(c.category.id) ?? latest, latest };
  });
}

function count(n: number, one: string, many: string): string {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

/**
 * The chart in one line, for everyone (and as the canvas's description): how many points over
 * which times, the submissions in all and in the range, and the category that moved most.
 */
export function trendSummary(
  range: Range,
  points: readonly TrendPoint[],
  nameOf: (id: string) => string,
  now: number,
): string {
  const first = points[0];
  const last = points[points.length - 1];
  if (!first || !last) return 'No points to show.';
  const when = (point: TrendPoint) => formatDateTime(new Date(pointTime(point, now)).toISOString());
  const span =
    points.length === 1
      ? `1 ${RANGE_INFO[range].points} point, at ${when(first)}`
      : `${points.length.toLocaleString()} ${RANGE_INFO[range].points} points from ${when(first)} to ${when(last)}`;
  const inRange = points.reduce((sum, point) => sum + point.submissions, 0);
  const totals = `${count(last.totalSubmissions, 'submission', 'submissions')} in all, ${inRange.toLocaleString()} in this range`;
  let most: Movement | undefined;
  for (const m of movements(points)) {
    if (!most || Math.abs(m.latest - m.first) > Math.abs(most.latest - most.first)) most = m;
  }
  const moved =
    points.length === 1
      ? ''
      : most && most.latest !== most.first
        ? ` Moved most: ${nameOf(most.id)}, ${formatDifference(most.latest - most.first)} points.`
        : ' No category’s average moved.';
  return `${span}; ${totals}.${moved}`;
}

/** Dots on the lines while there are few points (a lone point has no line to show it),
 * smaller as they crowd, none past 40. */
export function dotRadius(points: number): number {
  return points <= 12 ? 3 : points <= 40 ? 2 : 0;
}
