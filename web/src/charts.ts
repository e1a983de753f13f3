// Charts through Chart.js, registering only the parts the pages use so the bundle stays small.
// Every chart is drawn once and then updated in place (no flicker, no re-creation).

import {
  ArcElement,
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  type ChartOptions,
  DoughnutController,
  Legend,
  LinearScale,
  Tooltip,
} from 'chart.js';
import { prefersReducedMotion } from './dom';

Chart.register(ArcElement, BarController, BarElement, CategoryScale, DoughnutController, Legend, LinearScale, Tooltip);

/** Slice colour for what is not allocated yet: light, so it reads as "empty". */
const UNALLOCATED = '#e4e4e7';
/** One colour per series (not per category) so the legend reads true; both pass 3:1 on white. */
const MINE = '#1d4ed8';
const NATIONAL = '#71717a';
/** Text and grid colours with at least 4.5:1 contrast on white. */
const TEXT = '#27272a';
const GRID = '#d4d4d8';

Chart.defaults.color = TEXT;
Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

function percent(value: unknown): string {
  return `${Number(value).toFixed(2)} %`;
}

/** One category's part of a chart. */
export interface Share {
  label: string;
  color: string;
  /** In percent, e.g. 12.5. */
  value: number;
}

/** Puts one value per category into a single-dataset chart, in place. */
function showShares(chart: Chart<'doughnut'> | Chart<'bar'>, shares: readonly Share[]): void {
  const dataset = chart.data.datasets[0];
  if (!dataset) return;
  chart.data.labels = shares.map((share) => share.label);
  dataset.data = shares.map((share) => share.value);
  dataset.backgroundColor = shares.map((share) => share.color);
  chart.update();
}

/** The doughnut preview on the allocate page; `unallocated` adds a grey slice. */
export class SplitPreview {
  private readonly chart: Chart<'doughnut'>;

  constructor(canvas: HTMLCanvasElement) {
    this.chart = new Chart(canvas, {
      type: 'doughnut',
      data: { labels: [], datasets: [{ data: [], backgroundColor: [], borderColor: '#ffffff', borderWidth: 1 }] },
      options: {
        animation: prefersReducedMotion() ? false : { duration: 200 },
        maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (item) => `${item.label}: ${percent(item.raw)}` } },
        },
      },
    });
  }

  update(shares: Share[], unallocated: number): void {
    showShares(
      this.chart,
      unallocated > 0 ? [...shares, { label: 'Not allocated yet', color: UNALLOCATED, value: unallocated }] : shares,
    );
  }

  destroy(): void {
    this.chart.destroy();
  }
}

/** Category names down the side, percentages along the bottom (long names stay readable). */
function horizontalBars(durationMs: number): ChartOptions<'bar'> {
  return {
    indexAxis: 'y',
    animation: prefersReducedMotion() ? false : { duration: durationMs },
    maintainAspectRatio: false,
    scales: {
      x: { min: 0, suggestedMax: 20, grid: { color: GRID }, ticks: { callback: (v) => `${v} %` } },
      y: { grid: { display: false } },
    },
  };
}

/** Horizontal bars, one per category; the live page updates them as snapshots arrive. */
export class CategoryBars {
  private readonly chart: Chart<'bar'>;

  constructor(canvas: HTMLCanvasElement, datasetLabel: string) {
    this.chart = new Chart(canvas, {
      type: 'bar',
      data: {
        labels: [],
        datasets: [{ label: datasetLabel, data: [], backgroundColor: [], borderColor: TEXT, borderWidth: 1 }],
      },
      options: {
        ...horizontalBars(400),
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (item) => percent(item.raw) } },
        },
      },
    });
  }

  update(shares: Share[]): void {
    showShares(this.chart, shares);
  }

  destroy(): void {
    this.chart.destroy();
  }
}

/** Two bars per category: one allocation beside the national average. */
export class Comparison {
  private readonly chart: Chart<'bar'>;

  constructor(canvas: HTMLCanvasElement, labels: string[], mine: number[], national: number[]) {
    this.chart = new Chart(canvas, {
      type: 'bar',
      data: {
        labels,
        datasets: [
          { label: 'This allocation', data: mine, backgroundColor: MINE },
          { label: 'National average', data: national, backgroundColor: NATIONAL },
        ],
      },
      options: {
        ...horizontalBars(300),
        plugins: {
          legend: { position: 'top' },
          tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${percent(item.raw)}` } },
        },
      },
    });
  }

  updateNational(national: number[]): void {
    const dataset = this.chart.data.datasets[1];
    if (!dataset) return;
    dataset.data = national;
    this.chart.update();
  }

  destroy(): void {
    this.chart.destroy();
  }
}
