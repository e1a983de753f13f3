// The trends page's line chart: one line per category over time, loaded with the trends page.
// Chart.js is one module shared with the other pages' charts, so the line parts registered here
// still join the app's main script (about 5 KB gzip); only this code waits for the visit. The
// time axis is a linear scale in ms with ticks from trend.ts: no date adapter to bundle.

import {
  Chart,
  type ChartDataset,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from 'chart.js';
import type { Category, TrendPoint } from './api/operations';
import { formatDateTime, prefersReducedMotion } from './dom';
import { dotRadius, pointTime, tickLabel, timeTicks } from './trend';

Chart.register(Legend, LinearScale, LineController, LineElement, PointElement, Tooltip);

/** A colour token of the design system (styles/tokens.css), for the theme in force now. */
function token(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/** Room per tick label on the time axis, in px. */
const TICK_ROOM = 64;

type Point = { x: number; y: number };

export class TrendChart {
  private readonly chart: Chart<'line', Point[]>;

  private readonly ids: string[];

  constructor(canvas: HTMLCanvasElement, categories: readonly Category[]) {
    this.ids = categories.map((c) => c.id);
    const text = token('--color-text', '#111827');
    const muted = token('--color-muted', '#4b5563');
    const grid = token('--color-line', '#dde1ea');
    let step = 60_000;
    const datasets: ChartDataset<'line', Point[]>[] = categories.map((c) => ({
      label: c.name,
      data: [],
      borderColor: c.color,
      backgroundColor: c.color,
      borderWidth: 2,
      pointRadius: 0,
      pointHoverRadius: 4,
      tension: 0,
      // The newest point sits at the right edge (now): drawn whole, not cut at the axis.
      clip: false,
    }));
    this.chart = new Chart(canvas, {
      type: 'line',
      data: { datasets },
      options: {
        animation: prefersReducedMotion() ? false : { duration: 250 },
        maintainAspectRatio: false,
        layout: { padding: { right: 6 } },
        interaction: { mode: 'nearest', axis: 'x', intersect: false },
        color: text,
        scales: {
          x: {
            type: 'linear',
            grid: { color: grid },
            border: { display: false },
            afterBuildTicks: (scale) => {
              const ticks = timeTicks(scale.min, scale.max, Math.floor((scale.width || 320) / TICK_ROOM));
              step = ticks.step;
              scale.ticks = ticks.values.map((value) => ({ value }));
            },
            ticks: { color: muted, maxRotation: 0, callback: (value) => tickLabel(Number(value), step) },
          },
          y: {
            beginAtZero: true,
            suggestedMax: 20,
            grid: { color: grid },
            border: { display: false },
            ticks: { color: muted, callback: (value) => `${value} %` },
          },
        },
        plugins: {
          legend: { position: 'top', labels: { color: text, usePointStyle: true, boxWidth: 8, boxHeight: 8 } },
          tooltip: {
            itemSort: (a, b) => (b.parsed.y ?? 0) - (a.parsed.y ?? 0),
            callbacks: {
              title: (items) => {
                const x = items[0]?.parsed.x;
                return x === undefined || x === null ? '' : formatDateTime(new Date(x).toISOString());
              },
              label: (item) => `${item.dataset.label}: ${Number(item.parsed.y).toFixed(2)} %`,
            },
          },
        },
      },
    });
  }

  /** Draws `points` between `min` and `max` (ms); each category's line from its averages. */
  update(points: readonly TrendPoint[], min: number, max: number, now: number): void {
    const dots = dotRadius(points.length);
    this.ids.forEach((id, index) => {
      const dataset = this.chart.data.datasets[index];
      if (!dataset) return;
      dataset.data = points.flatMap((point) => {
        const category = point.categories.find((c) => c.category.id === id);
        return category ? [{ x: pointTime(point, now), y: category.averagePercentage }] : [];
      });
      dataset.pointRadius = dots;
    });
    const x = this.chart.options.scales?.x;
    if (x) {
      x.min = min;
      x.max = Math.max(max, min + 60_000);
    }
    this.chart.update();
  }

  destroy(): void {
    this.chart.destroy();
  }
}
