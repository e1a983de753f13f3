// The national distribution of one category on the result page: a small histogram of how many
// citizens gave how much, the middle half and the median as a box under it, and the visitor's
// own share as a line across both; plus the words that say the same (rank, median, quartiles).
// Inline SVG like the status page's sparklines: no Chart.js instance per category, and the
// colours come from the design tokens through CSS classes (styles/pages.css), so both themes
// apply by themselves.

import { formatHundredths, fromPercentage } from './allocation';

const SVG = 'http://www.w3.org/2000/svg';

/** How many ranges the histogram asks for: 5 points each. */
export const BUCKETS = 20;
/** The drawing's own units: x is the percentage itself (0–100), the SVG stretches to its box. */
export const WIDTH = 100;
export const HEIGHT = 40;
/** The bars stand on this line; the box plot lies below it. */
export const BARS_BOTTOM = 26;
/** The tallest bar's height; the room above it keeps the marker's end visible. */
const BARS_HEIGHT = 24;
/** A bar of one citizen among thousands still shows. */
const MIN_BAR = 1.5;
/** Between bars, in percentage points. */
const GAP = 0.4;
const BOX_TOP = 30;
const BOX_BOTTOM = 38;

export interface Bucket {
  from: number;
  to: number;
  count: number;
}

export interface Bar {
  x: number;
  y: number;
  width: number;
  height: number;
  count: number;
}

/** The bucket a percentage falls in: `from` ≤ value < `to`, and the last one also holds 100. */
export function bucketOf(buckets: readonly Bucket[], percentage: number): number {
  const index = buckets.findIndex((b) => percentage >= b.from && percentage < b.to);
  if (index >= 0) return index;
  const last = buckets.length - 1;
  return last >= 0 && percentage === buckets[last]?.to ? last : -1;
}

/** One rectangle per bucket, scaled to the fullest one; an empty bucket has no height. */
export function bars(buckets: readonly Bucket[]): Bar[] {
  const most = Math.max(0, ...buckets.map((b) => b.count));
  return buckets.map((b) => {
    const height = b.count === 0 || most === 0 ? 0 : Math.max(MIN_BAR, (b.count / most) * BARS_HEIGHT);
    const width = Math.max(0, b.to - b.from - GAP);
    return {
      x: round(b.from + GAP / 2),
      y: round(BARS_BOTTOM - height),
      width: round(width),
      height: round(height),
      count: b.count,
    };
  });
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** "12.50 %" for an API percentage. */
function percent(value: number): string {
  return `${formatHundredths(fromPercentage(value))} %`;
}

/**
 * A share of citizens for "more than … of citizens": rounded down, so the claim stays true
 * (82.9 → "82 %"); below 1 with its decimals, since "more than 0 %" would say nothing.
 */
export function moreThanShare(rank: number): string {
  if (rank > 0 && rank < 1) return `${Number(rank.toFixed(2))} %`;
  return `${Math.floor(rank)} %`;
}

/** A share of citizens for "like … of citizens": rounded, but never to 0 or 100 when it is not. */
export function aboutShare(share: number): string {
  if (share > 0 && share < 1) return `${Number(share.toFixed(2))} %`;
  const rounded = Math.round(share);
  return `${share < 100 ? Math.min(99, rounded) : rounded} %`;
}

export interface Standing {
  name: string;
  /** The visitor's share, as the API's percentage (12.5). */
  mine: number;
  /** `Allocation.percentileRank`: who gave less, in percent of everyone counted; null while nobody is counted. */
  rank: number | null;
  zeroShare: number | null;
  median: number | null;
}

/**
 * Where the visitor stands in words: "You gave Defense more than 82 % of citizens". Nothing
 * given is said with how many gave nothing too (the most common tie); the lowest share says
 * that nobody gave less rather than "more than 0 %"; before the visitor's own submission is
 * counted the rank can reach 100, which is "every citizen counted".
 */
export function rankSentence({ name, mine, rank, zeroShare, median }: Standing): string {
  // The section's introduction says that nobody is counted; each card need not repeat it at length.
  if (rank === null) return 'No one to compare with yet.';
  if (mine === 0) {
    if (zeroShare === null || zeroShare === 0) return `You gave ${name} nothing; every citizen counted gave it more.`;
    if (zeroShare >= 100) return `You gave ${name} nothing, like every citizen counted.`;
    return `You gave ${name} nothing, like ${aboutShare(zeroShare)} of citizens.`;
  }
  const atMedian = median !== null && fromPercentage(median) === fromPercentage(mine) ? ', the median share' : '';
  if (rank <= 0) return `Nobody counted gave ${name} less than you${atMedian}.`;
  if (rank >= 100) return `You gave ${name} more than every citizen counted${atMedian}.`;
  return `You gave ${name} more than ${moreThanShare(rank)} of citizens${atMedian}.`;
}

/** "Median 10.00 % · middle half 5.00–15.00 %"; nothing while nobody is counted. */
export function statsLine(median: number | null, quartiles: { q1: number; q3: number } | null): string {
  if (median === null) return '';
  const middle = quartiles
    ? quartiles.q1 === quartiles.q3
      ? ` · middle half all at ${percent(quartiles.q1)}`
      : ` · middle half ${formatHundredths(fromPercentage(quartiles.q1))}–${percent(quartiles.q3)}`
    : '';
  return `Median ${percent(median)}${middle}`;
}

function citizens(count: number): string {
  return count === 1 ? '1 citizen' : `${count.toLocaleString()} citizens`;
}

function points(n: number): string {
  return String(Number(n.toFixed(2)));
}

/**
 * The chart's text alternative in one line: where the citizens' shares lie, the fullest range
 * (or how many tie for it), and the visitor's mark.
 */
export function describeHistogram(name: string, buckets: readonly Bucket[], total: number, mine: number): string {
  const you = `your ${percent(mine)} is marked`;
  const filled = buckets.filter((b) => b.count > 0);
  const first = filled[0];
  const last = filled[filled.length - 1];
  if (total === 0 || !first || !last) return `${name}: nobody counted yet; ${you}.`;
  const step = points(first.to - first.from);
  const most = Math.max(...filled.map((b) => b.count));
  const fullest = filled.filter((b) => b.count === most);
  const top =
    fullest.length === 1 && fullest[0]
      ? `the fullest, ${points(fullest[0].from)} to ${points(fullest[0].to)} %, holds ${citizens(most)}`
      : `${fullest.length} ranges tie for the most, ${citizens(most)} each`;
  return `${name}: ${citizens(total)} gave ${points(first.from)} to ${points(last.to)} %, counted in ranges of ${step} points; ${top}; ${you}.`;
}

export interface Spread {
  buckets: readonly Bucket[];
  total: number;
  median: number | null;
  quartiles: { q1: number; q3: number } | null;
  /** The visitor's share in percent. */
  mine: number;
}

function element<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number>,
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

/** One category's histogram with its box plot and the visitor's mark; `update` redraws it. */
export class DistributionChart {
  readonly element: SVGSVGElement;

  constructor(private readonly name: string) {
    this.element = element('svg', {
      class: 'spread-chart',
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      preserveAspectRatio: 'none',
      role: 'img',
    });
  }

  update(spread: Spread): void {
    const { buckets, total, median, quartiles, mine } = spread;
    const parts: SVGElement[] = [
      element('path', { class: 'spread-base', d: `M0 ${BARS_BOTTOM}H${WIDTH}` }),
      ...bars(buckets)
        .filter((bar) => bar.height > 0)
        .map((bar) =>
          element('rect', { class: 'spread-bar', x: bar.x, y: bar.y, width: bar.width, height: bar.height }),
        ),
    ];
    if (quartiles) {
      parts.push(
        element('rect', {
          class: 'spread-box',
          x: quartiles.q1,
          y: BOX_TOP,
          // A middle half at one value still shows as a sliver.
          width: Math.max(0.6, quartiles.q3 - quartiles.q1),
          height: BOX_BOTTOM - BOX_TOP,
        }),
      );
    }
    if (median !== null) {
      parts.push(element('path', { class: 'spread-median', d: `M${median} ${BOX_TOP - 1}V${BOX_BOTTOM + 1}` }));
    }
    parts.push(element('path', { class: 'spread-mine', d: `M${mine} 0V${HEIGHT}` }));
    this.element.replaceChildren(...parts);
    this.element.setAttribute('aria-label', describeHistogram(this.name, buckets, total, mine));
    this.element.dataset.counts = buckets.map((b) => b.count).join(',');
    this.element.dataset.ownBucket = String(bucketOf(buckets, mine));
    this.element.dataset.mine = String(mine);
  }
}
