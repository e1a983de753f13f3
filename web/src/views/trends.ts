// The trends page: the national average per category over time as a line chart, for the last
// hour (a point a minute), the last day (a point an hour) or all time (a point a day). It
// follows `aggregatesUpdated` as the live page does, updating or adding the newest point in
// place. Below the chart, the same in words (one line) and a table of each category's first
// and latest average in the range, so nothing is in the canvas alone. Loaded only when
// visited (see main.ts).

import { formatDifference } from '../allocation';
import { ApiError, request } from '../api/graphql';
import { type ConnectionState, watchAggregates } from '../api/live';
import { type AggregateSnapshot, type Category, TREND, type Trend, type TrendPoint } from '../api/operations';
import { type Child, formatDateTime, h, replace } from '../dom';
import {
  RANGES,
  RANGE_INFO,
  type Range,
  mergeSnapshot,
  movements,
  pointTime,
  rangeStart,
  rangeVariables,
  trendSummary,
} from '../trend';
import { TrendChart } from '../trend-chart';
import type { View } from './view';

const STATE_TEXT: Record<ConnectionState, string> = {
  connecting: 'Connecting…',
  connected: 'Live',
  reconnecting: 'Reconnecting…',
};

/** Kept while the visitor moves between pages. */
let range: Range = 'day';

const EMPTY_TEXT: Record<Range, string> = {
  hour: 'Nobody submitted in the last hour.',
  day: 'Nobody submitted in the last day.',
  all: 'Nobody has submitted yet.',
};

function percentCell(hundredths: number): Child[] {
  return [(hundredths / 100).toFixed(2), h('span', { class: 'unit' }, ' %')];
}

export const trendsView: View = (root) => {
  let controller = new AbortController();
  let chart: TrendChart | null = null;
  let categories: Category[] = [];
  let trend: Trend | null = null;
  /** The newest live snapshot, kept while a range loads, to fold in once it has. */
  let pending: AggregateSnapshot | null = null;

  const state = h(
    'p',
    { id: 'trend-connection', class: 'connection', role: 'status', 'data-state': 'connecting' },
    STATE_TEXT.connecting,
  );
  const buttons = new Map(
    RANGES.map((r) => [
      r,
      h('button', { type: 'button', id: `range-${r}`, 'aria-pressed': String(r === range) }, RANGE_INFO[r].label),
    ]),
  );
  const status = h('p', { class: 'loading', role: 'status', id: 'trend-status' }, 'Loading…');
  const summary = h('p', { class: 'trend-summary', id: 'trend-summary' });
  const canvas = h('canvas', {
    id: 'trend-chart',
    role: 'img',
    'aria-label': 'Line chart of the national average per category over time; the table below has the numbers',
    'aria-describedby': 'trend-summary',
    'data-points': '0',
  });
  const figure = h(
    'figure',
    { class: 'trend card', id: 'trend-figure', hidden: true },
    h('div', { class: 'chart-box trend-box' }, canvas),
    summary,
  );
  const caption = h('caption', {});
  const firstHeader = h('th', { scope: 'col', class: 'num' });
  const body = h('tbody', {});
  const table = h(
    'div',
    { class: 'table-scroll', hidden: true, id: 'trend-table-box' },
    h(
      'table',
      { class: 'result-table', id: 'trend-table' },
      caption,
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { scope: 'col' }, 'Category'),
          firstHeader,
          h('th', { scope: 'col', class: 'num' }, 'Latest', h('span', { class: 'header-unit' }, ' (%)')),
          h('th', { scope: 'col', class: 'num' }, 'Change'),
        ),
      ),
      body,
    ),
  );
  const empty = h('div', { class: 'card trend-empty', id: 'trend-empty', hidden: true });

  replace(
    root,
    h('h1', {}, 'Trends'),
    h(
      'p',
      { class: 'lede' },
      'The national average per category over time: each point is the average of every submission up to the end of its minute, hour or day.',
    ),
    h(
      'div',
      { class: 'live-header' },
      state,
      h('div', { class: 'order-switch', role: 'group', 'aria-label': 'Time range' }, ...buttons.values()),
    ),
    status,
    empty,
    figure,
    table,
  );

  const nameOf = (id: string) => categories.find((c) => c.id === id)?.name ?? id;

  const draw = () => {
    if (!trend) return;
    const now = Date.now();
    const points = trend.points;
    const shown = points.length > 0;
    empty.hidden = shown;
    figure.hidden = !shown;
    table.hidden = !shown;
    canvas.dataset.points = String(points.length);
    canvas.dataset.bucket = trend.bucket;
    if (!shown) {
      replace(
        empty,
        h('p', {}, EMPTY_TEXT[range]),
        h(
          'p',
          { class: 'hint' },
          range === 'all' ? '' : 'Try a longer range, or ',
          h(
            'a',
            { href: '/', 'data-link': true },
            range === 'all' ? 'Make the first allocation' : 'make an allocation',
          ),
          '.',
        ),
      );
      return;
    }
    const first = points[0] as TrendPoint;
    const last = points[points.length - 1] as TrendPoint;
    const start = rangeStart(range, now) ?? Date.parse(first.start);
    if (!chart) chart = new TrendChart(canvas, categories);
    chart.update(points, start, now, now);
    replace(summary, trendSummary(range, points, nameOf, now));

    const firstTime = formatDateTime(new Date(pointTime(first, now)).toISOString());
    const lastTime = formatDateTime(new Date(pointTime(last, now)).toISOString());
    replace(
      caption,
      points.length === 1
        ? `National average at ${lastTime}, the only point in this range, in percent.`
        : `National average at ${firstTime} (first point shown) and at ${lastTime} (latest), in percent.`,
    );
    replace(firstHeader, 'First', h('span', { class: 'header-unit' }, ' (%)'));
    const byId = new Map(categories.map((c) => [c.id, c]));
    replace(
      body,
      ...movements(points).map(({ id, first: before, latest }) => {
        const category = byId.get(id);
        const change = latest - before;
        return h(
          'tr',
          { 'data-category': category?.slug ?? id },
          h(
            'th',
            { scope: 'row' },
            h('span', {
              class: 'swatch',
              style: `--swatch: ${category?.color ?? 'transparent'}`,
              'aria-hidden': 'true',
            }),
            category?.name ?? id,
          ),
          h('td', { class: 'num', 'data-column': 'first' }, ...percentCell(before)),
          h(
            'td',
            { class: 'num', 'data-column': 'latest', 'data-value': (latest / 100).toFixed(2) },
            ...percentCell(latest),
          ),
          h(
            'td',
            { class: `num ${change > 0 ? 'more' : change < 0 ? 'less' : ''}`, 'data-column': 'change' },
            change === 0 ? null : h('span', { class: 'arrow', 'aria-hidden': 'true' }, change > 0 ? '▲' : '▼'),
            formatDifference(change),
            change === 0 ? null : h('span', { class: 'visually-hidden' }, change > 0 ? ' points up' : ' points down'),
          ),
        );
      }),
    );
  };

  /** Folds a live snapshot into the newest point once the range has loaded. */
  const follow = (snapshot: AggregateSnapshot) => {
    if (!trend) {
      pending = snapshot;
      return;
    }
    if (snapshot.version <= trend.version) return;
    const points = mergeSnapshot(trend.points, snapshot, trend.bucket, rangeStart(range, Date.now()));
    trend = { ...trend, version: snapshot.version, points: [...points] };
    draw();
  };

  const load = async () => {
    controller.abort();
    controller = new AbortController();
    const signal = controller.signal;
    const asked = range;
    figure.setAttribute('aria-busy', 'true');
    status.hidden = false;
    status.className = 'loading';
    replace(status, `Loading ${RANGE_INFO[asked].label.toLowerCase()}…`);
    try {
      const data = await request(TREND, rangeVariables(asked, Date.now()), { signal });
      if (signal.aborted) return;
      categories = data.categories;
      trend = data.aggregatesTrend;
      status.hidden = true;
      replace(status, '');
      draw();
      const waiting = pending;
      pending = null;
      if (waiting) follow(waiting);
    } catch (error) {
      if (signal.aborted) return;
      status.className = 'error-text';
      const retry = h('button', { type: 'button', class: 'button small' }, 'Try again');
      retry.addEventListener('click', () => void load());
      replace(status, error instanceof ApiError ? error.message : 'The trend could not be loaded.', ' ', retry);
    } finally {
      if (!signal.aborted) figure.removeAttribute('aria-busy');
    }
  };

  for (const [r, button] of buttons) {
    button.addEventListener('click', () => {
      if (r === range && trend) return;
      range = r;
      for (const [other, b] of buttons) b.setAttribute('aria-pressed', String(other === r));
      // The chart shows the old range until the new one arrives; a snapshot meanwhile waits
      // for the new range's buckets.
      pending = null;
      trend = null;
      void load();
    });
  }

  void load();
  const stop = watchAggregates({
    snapshot: follow,
    state: (next) => {
      state.dataset.state = next;
      replace(state, STATE_TEXT[next]);
    },
  });

  return () => {
    controller.abort();
    stop();
    chart?.destroy();
  };
};
