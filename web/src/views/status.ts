// The status page: this server's own figures from `/metrics`, every two seconds while the page
// is visible, as small live charts (the last two minutes) with the current value in words
// beside each; then the dependencies and snapshot versions as a table. Loaded only when
// visited (see main.ts), so it costs `/` nothing.

import {
  type MetricsResult,
  Scrape,
  Series,
  type Status,
  TIERS,
  type Tier,
  VERSION_TIERS,
  type VersionTier,
  fetchMetrics,
  summarize,
} from '../api/metrics';
import { h, replace } from '../dom';
import { Sparkline } from '../sparkline';
import type { View } from './view';

/** How often the page scrapes `/metrics`. */
export const POLL_MS = 2000;
/** Points kept per series: two minutes at one every two seconds. */
export const POINTS = 60;

/** `n` with `digits` decimals (fewer for large numbers), in the reader's locale; null: a dash. */
export function formatNumber(n: number | null, digits = 2): string {
  if (n === null || !Number.isFinite(n)) return '–';
  const d = Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? Math.min(1, digits) : digits;
  return n.toLocaleString(undefined, { minimumFractionDigits: n === 0 ? 0 : d, maximumFractionDigits: d });
}

/** A duration in seconds as "4.2 s" or "3 min 5 s". */
export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${formatNumber(seconds, seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes.toLocaleString()} min ${Math.floor(seconds % 60)} s`;
}

const TIER_NAMES: Record<Tier, string> = { CACHE: 'Cache', SUMMARY: 'Summary', LIVE: 'Live' };
const VERSION_NAMES: Record<VersionTier, string> = { cache: 'Cache', summary: 'Summary', feed: 'Feed' };

type State = 'loading' | 'live' | 'paused' | 'unreachable' | 'not-served';
const STATE_TEXT: Record<State, string> = {
  loading: 'Reading the metrics…',
  live: 'Live: updated every 2 seconds',
  paused: 'Paused while the page is hidden',
  unreachable: 'Cannot reach the server; trying again',
  'not-served': 'The metrics are not served here',
};

interface Card {
  section: HTMLElement;
  value: HTMLElement;
  note: HTMLElement;
  chart: Sparkline;
}

/** One figure: title, current value with its unit, the chart, a line of context. */
function card(id: string, title: string, unit: string, classes: string[] = ['s0']): Card {
  const value = h('strong', { id: `${id}-value`, 'data-value': '' }, '–');
  const note = h('p', { class: 'hint', id: `${id}-note` });
  const chart = new Sparkline(classes, `${title}: no data yet`);
  const section = h(
    'section',
    { class: 'metric card', id, 'aria-labelledby': `${id}-title` },
    h('h2', { id: `${id}-title` }, title),
    h('p', { class: 'metric-value' }, value, ' ', h('span', { class: 'unit' }, unit)),
    chart.element,
    note,
  );
  return { section, value, note, chart };
}

/** The chart's text alternative: what it spans, its range, and where it is now. */
function describe(title: string, values: readonly (number | null)[], unit: string, digits = 2): string {
  const known = values.filter((v): v is number => v !== null && Number.isFinite(v));
  const last = known[known.length - 1];
  if (last === undefined) return `${title}: no data yet`;
  const span = Math.round(((values.length - 1) * POLL_MS) / 1000);
  const fmt = (n: number) => `${formatNumber(n, digits)} ${unit}`;
  return `${title} over the last ${span} seconds: lowest ${fmt(Math.min(...known))}, highest ${fmt(Math.max(...known))}, now ${fmt(last)}`;
}

function setValue(element: HTMLElement, n: number | null, digits = 2): void {
  replace(element, formatNumber(n, digits));
  element.dataset.value = n === null ? '' : String(n);
}

export const statusView: View = (root) => {
  const state = h('p', { id: 'status-state', class: 'connection', role: 'status', 'data-state': 'loading' });
  const updated = h('p', { class: 'hint', id: 'status-updated' });
  const writes = card('metric-writes', 'Writes', 'per second');
  const reads = card(
    'metric-reads',
    'Reads by tier',
    'per second',
    TIERS.map((_, i) => `s${i}`),
  );
  const tierValues = new Map<Tier, HTMLElement>();
  const legend = h(
    'ul',
    { class: 'spark-legend', 'aria-label': 'Reads per second by tier' },
    ...TIERS.map((tier, i) => {
      const value = h('span', { id: `reads-${tier.toLowerCase()}`, 'data-value': '' }, '–');
      tierValues.set(tier, value);
      return h('li', {}, h('span', { class: `key s${i}`, 'aria-hidden': 'true' }), `${TIER_NAMES[tier]} `, value, '/s');
    }),
  );
  reads.section.insertBefore(legend, reads.note);
  const outbox = card('metric-outbox', 'Outbox depth', 'rows to fold');
  const latency = card('metric-fold', 'Fold latency', 'ms, last fold');
  const subscribers = card('metric-subscribers', 'Subscribers', 'subscriptions');

  const table = h('tbody', {});
  const details = h(
    'section',
    { class: 'card status-details', 'aria-labelledby': 'status-details-title' },
    h('h2', { id: 'status-details-title' }, 'Dependencies and versions'),
    h('div', { class: 'table-scroll' }, h('table', { class: 'status-table', id: 'status-table' }, table)),
  );
  const grid = h(
    'div',
    { class: 'status-grid', id: 'status-grid' },
    writes.section,
    reads.section,
    outbox.section,
    latency.section,
    subscribers.section,
  );
  const body = h('div', { id: 'status-body' }, grid, details);

  replace(
    root,
    h('h1', {}, 'Service status'),
    h(
      'p',
      { class: 'lede' },
      'This server’s own figures, read from ',
      h('a', { href: '/metrics' }, '/metrics'),
      ' every two seconds while this page is open; the charts show the last two minutes.',
    ),
    h('div', { class: 'status-header' }, state, updated),
    body,
  );

  const setState = (next: State) => {
    if (state.dataset.state === next && state.textContent) return;
    state.dataset.state = next;
    replace(state, STATE_TEXT[next]);
  };
  setState('loading');

  const series = {
    writes: new Series(POINTS),
    reads: TIERS.map(() => new Series(POINTS)),
    outbox: new Series(POINTS),
    latency: new Series(POINTS),
    subscribers: new Series(POINTS),
  };

  const row = (id: string, name: string, value: string, data: string) =>
    h('tr', {}, h('th', { scope: 'row' }, name), h('td', { id, 'data-value': data }, value));
  const upText = (up: boolean | null) => (up === null ? 'Not used' : up ? 'Up' : 'Down');

  const show = (status: Status) => {
    series.writes.push(status.writesPerSecond);
    TIERS.forEach((tier, i) => series.reads[i]?.push(status.readsPerSecond[tier]));
    series.outbox.push(status.outboxDepth);
    // Between folds the line holds the last fold's time; before the first fold there is none.
    series.latency.push(status.foldLatencyMs ?? series.latency.latest());
    series.subscribers.push(status.subscribers);

    setValue(writes.value, status.writesPerSecond);
    replace(
      writes.note,
      h('span', { id: 'writes-total', 'data-value': String(status.writesTotal) }, status.writesTotal.toLocaleString()),
      status.writesTotal === 1 ? ' submission written since start' : ' submissions written since start',
    );
    writes.chart.update([series.writes.values], POINTS, describe('Writes', series.writes.values, 'per second'));

    const totalReads = TIERS.reduce<number | null>((sum, tier) => {
      const rate = status.readsPerSecond[tier];
      return rate === null ? null : (sum ?? 0) + rate;
    }, 0);
    setValue(reads.value, totalReads);
    for (const tier of TIERS) {
      const element = tierValues.get(tier);
      if (element) setValue(element, status.readsPerSecond[tier]);
    }
    replace(reads.note, 'Where reads of the average were answered from: cache, summary table, or live SQL.');
    reads.chart.update(
      series.reads.map((s) => s.values),
      POINTS,
      TIERS.map((tier, i) => describe(`${TIER_NAMES[tier]} reads`, series.reads[i]?.values ?? [], 'per second')).join(
        '; ',
      ),
    );

    setValue(outbox.value, status.outboxDepth, 0);
    replace(
      outbox.note,
      status.outboxDepth > 0 ? `Oldest waiting ${formatSeconds(status.outboxOldestAgeSeconds)}` : 'Nothing waiting',
    );
    outbox.chart.update([series.outbox.values], POINTS, describe('Outbox depth', series.outbox.values, 'rows', 0));

    const lastLatency = series.latency.latest();
    setValue(latency.value, lastLatency, 1);
    replace(
      latency.note,
      status.foldsTotal === 0 && lastLatency === null
        ? 'No fold yet'
        : `${status.foldsTotal.toLocaleString()} ${status.foldsTotal === 1 ? 'fold' : 'folds'} since start`,
      status.foldErrorsTotal > 0 ? `, ${status.foldErrorsTotal.toLocaleString()} failed` : '',
      status.foldLatencyMs === null && lastLatency !== null ? '; the line holds the last fold’s time' : '',
    );
    latency.chart.update(
      [series.latency.values],
      POINTS,
      describe('Fold latency', series.latency.values, 'milliseconds', 1),
    );

    setValue(subscribers.value, status.subscribers, 0);
    replace(
      subscribers.note,
      `${status.websocketConnections.toLocaleString()} WebSocket ${status.websocketConnections === 1 ? 'connection' : 'connections'}`,
    );
    subscribers.chart.update(
      [series.subscribers.values],
      POINTS,
      describe('Subscribers', series.subscribers.values, 'subscriptions', 0),
    );

    replace(
      table,
      row(
        'dependency-database',
        'Database',
        upText(status.dependencies.database),
        String(status.dependencies.database),
      ),
      row('dependency-redis', 'Redis', upText(status.dependencies.redis), String(status.dependencies.redis)),
      row(
        'database-pool',
        'Database connections',
        status.pool ? `${status.pool.inUse.toLocaleString()} in use of ${status.pool.max.toLocaleString()}` : '–',
        status.pool ? String(status.pool.inUse) : '',
      ),
      ...VERSION_TIERS.map((tier) => {
        const version = status.versions[tier];
        return row(
          `version-${tier}`,
          `${VERSION_NAMES[tier]} snapshot version`,
          version === null ? 'Not reported' : version.toLocaleString(),
          version === null ? '' : String(version),
        );
      }),
    );
    for (const [id, up] of [
      ['dependency-database', status.dependencies.database],
      ['dependency-redis', status.dependencies.redis],
    ] as const) {
      const cell = table.querySelector<HTMLElement>(`#${id}`);
      if (cell) cell.dataset.state = up === null ? 'none' : up ? 'up' : 'down';
    }
    replace(updated, `Updated ${new Date().toLocaleTimeString()}`);
  };

  let previous: Scrape | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let inFlight = false;

  const notServed = () => {
    setState('not-served');
    replace(
      body,
      h(
        'div',
        { class: 'card', id: 'metrics-not-served' },
        h('p', {}, 'This server does not serve its metrics at ', h('code', {}, '/metrics'), '.'),
        h(
          'p',
          { class: 'hint' },
          'It was started with ',
          h('code', {}, '--metrics false'),
          ', or serves them on an address of its own (',
          h('code', {}, '--metrics-bind'),
          '), which this page cannot reach.',
        ),
      ),
    );
  };

  const schedule = () => {
    clearTimeout(timer);
    if (!stopped && document.visibilityState !== 'hidden') timer = setTimeout(poll, POLL_MS);
  };

  async function poll(): Promise<void> {
    if (stopped || inFlight) return;
    inFlight = true;
    let result: MetricsResult | null = null;
    try {
      result = await fetchMetrics();
    } catch {
      result = null;
    }
    inFlight = false;
    if (stopped) return;
    if (result === null) {
      setState('unreachable');
      previous = null;
      schedule();
      return;
    }
    if (!result.served) {
      notServed();
      return;
    }
    show(summarize(previous, result.scrape));
    previous = result.scrape;
    if (document.visibilityState !== 'hidden') setState('live');
    schedule();
  }

  const visibility = () => {
    if (document.visibilityState === 'hidden') {
      clearTimeout(timer);
      if (state.dataset.state === 'live') setState('paused');
    } else if (state.dataset.state !== 'not-served') {
      // Rates over the hidden time would be averages of minutes: start them afresh.
      previous = null;
      void poll();
    }
  };
  document.addEventListener('visibilitychange', visibility);
  void poll();

  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', visibility);
  };
};
