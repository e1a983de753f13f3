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

/** A colour token of the design system (styles/tokens.css), for the theme in force now. */
function token(name: string, fallback: string): string {
  if (typeof window === 'undefined' || typeof getComputedStyle !== 'function') return fallback;
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/** Read when a chart is made, so a chart drawn in the dark theme uses the dark tokens. */
function palette() {
  return {
    /** What is not allocated yet: the slider track's colour, so it reads as "empty". */
    unallocated: token('--color-track', '#e2e5ee'),
    /** One colour per series (not per category) so the legend reads true. */
    mine: token('--color-accent', '#4338ca'),
    national: token('--color-line-strong', '#8a93a6'),
    text: token('--color-text', '#111827'),
    muted: token('--color-muted', '#4b5563'),
    grid: token('--color-line', '#dde1ea'),
    surface: token('--color-surface', '#ffffff'),
  };
}

Chart.defaults.font.family = '"Inter Variable", system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

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

  private readonly unallocated: string;

  constructor(canvas: HTMLCanvasElement) {
    const colors = palette();
    this.unallocated = colors.unallocated;
    this.chart = new Chart(canvas, {
      type: 'doughnut',
      data: { labels: [], datasets: [{ data: [], backgroundColor: [], borderColor: colors.surface, borderWidth: 2 }] },
      options: {
        animation: prefersReducedMotion() ? false : { duration: 200 },
        maintainAspectRatio: false,
        cutout: '68%',
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
      unallocated > 0
        ? [...shares, { label: 'Not allocated yet', color: this.unallocated, value: unallocated }]
        : shares,
    );
  }

  destroy(): void {
    this.chart.destroy();
  }
}

/** Category names down the side, percentages along the bottom (long names stay readable). */
function horizontalBars(durationMs: number): ChartOptions<'bar'> {
  const colors = palette();
  return {
    indexAxis: 'y',
    animation: prefersReducedMotion() ? false : { duration: durationMs },
    maintainAspectRatio: false,
    color: colors.text,
    scales: {
      x: {
        min: 0,
        suggestedMax: 20,
        grid: { color: colors.grid },
        border: { display: false },
        ticks: { color: colors.muted, callback: (v) => `${v} %` },
      },
      y: { grid: { display: false }, ticks: { color: colors.text } },
    },
  };
}

/** Two bars per category: one allocation beside the national average. */
export class Comparison {
  private readonly chart: Chart<'bar'>;

  constructor(canvas: HTMLCanvasElement, labels: string[], mine: number[], national: number[]) {
    const colors = palette();
    this.chart = new Chart(canvas, {
      type: 'bar',
      data: {
        labels,
        datasets: [
          { label: 'This allocation', data: mine, backgroundColor: colors.mine, borderRadius: 4 },
          { label: 'National average', data: national, backgroundColor: colors.national, borderRadius: 4 },
        ],
      },
      options: {
        ...horizontalBars(300),
        plugins: {
          legend: { position: 'top', labels: { color: colors.text, usePointStyle: true } },
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
