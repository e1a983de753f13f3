import { describe, expect, it } from 'vitest';
import { Scrape, Series, fetchMetrics, parseExposition, summarize } from './metrics';

// The shape the server writes (prometheus-client, OpenMetrics), cut down.
const FIRST = `# HELP tax_budget_submissions Submissions by result.
# TYPE tax_budget_submissions counter
tax_budget_submissions_total{result="accepted"} 4
tax_budget_submissions_total{result="invalid"} 7
# TYPE tax_budget_aggregate_reads counter
tax_budget_aggregate_reads_total{tier="CACHE"} 10
tax_budget_aggregate_reads_total{tier="SUMMARY"} 2
# TYPE tax_budget_fold_duration_seconds histogram
tax_budget_fold_duration_seconds_sum 0.5
tax_budget_fold_duration_seconds_count 2
tax_budget_fold_duration_seconds_bucket{le="0.25"} 1
tax_budget_fold_duration_seconds_bucket{le="+Inf"} 2
tax_budget_folds_total 2
# TYPE tax_budget_outbox_depth gauge
tax_budget_outbox_depth 3
tax_budget_outbox_oldest_age_seconds 1.5
tax_budget_snapshot_version{tier="summary"} 2
tax_budget_snapshot_version{tier="cache"} 0
tax_budget_dependency_up{dependency="database"} 1
# EOF
`;

const SECOND = `tax_budget_submissions_total{result="accepted"} 9
tax_budget_submissions_total{result="replayed"} 1
tax_budget_submissions_total{result="invalid"} 8
tax_budget_aggregate_reads_total{tier="CACHE"} 30
tax_budget_aggregate_reads_total{tier="SUMMARY"} 2
tax_budget_aggregate_reads_total{tier="LIVE"} 1
tax_budget_fold_duration_seconds_sum 0.62
tax_budget_fold_duration_seconds_count 5
tax_budget_folds_total 5
tax_budget_outbox_depth 0
tax_budget_snapshot_version{tier="summary"} 5
tax_budget_snapshot_version{tier="cache"} 5
tax_budget_dependency_up{dependency="database"} 1
tax_budget_dependency_up{dependency="redis"} 0
tax_budget_subscriptions_active 3
tax_budget_database_pool_connections{state="in_use"} 2
tax_budget_database_pool_connections{state="idle"} 1
tax_budget_database_pool_connections{state="max"} 16
tax_budget_websocket_connections 2
# EOF
`;

describe('parseExposition', () => {
  it('reads counters, gauges and histogram parts, and skips comments and # EOF', () => {
    const samples = parseExposition(FIRST);
    expect(samples).toHaveLength(14);
    expect(samples[0]).toEqual({ name: 'tax_budget_submissions_total', labels: { result: 'accepted' }, value: 4 });
    expect(samples.find((s) => s.name === 'tax_budget_outbox_depth')).toEqual({
      name: 'tax_budget_outbox_depth',
      labels: {},
      value: 3,
    });
    expect(samples.find((s) => s.name === 'tax_budget_fold_duration_seconds_sum')?.value).toBe(0.5);
    expect(samples.find((s) => s.labels.le === '+Inf')?.value).toBe(2);
  });

  it('reads labels with escaped quotes, backslashes and newlines, commas and spaces', () => {
    const [sample] = parseExposition('m{a="x\\"y",b="back\\\\slash", c="new\\nline",d="{,}"} 1.5e-3 1700000000\n');
    expect(sample).toEqual({
      name: 'm',
      labels: { a: 'x"y', b: 'back\\slash', c: 'new\nline', d: '{,}' },
      value: 0.0015,
    });
  });

  it('reads +Inf, -Inf and NaN, and skips lines it cannot read', () => {
    const samples = parseExposition('a +Inf\nb -Inf\nc NaN\nd\ne{x="1" 2\nf{x=1} 3\n{x="1"} 4\ng seven\nh 8\n');
    expect(samples.map((s) => [s.name, s.value])).toEqual([
      ['a', Infinity],
      ['b', -Infinity],
      ['c', NaN],
      ['h', 8],
    ]);
  });

  it('handles Windows line ends and an empty body', () => {
    expect(parseExposition('')).toEqual([]);
    expect(parseExposition('a 1\r\nb{l="v"} 2\r\n')).toEqual([
      { name: 'a', labels: {}, value: 1 },
      { name: 'b', labels: { l: 'v' }, value: 2 },
    ]);
  });
});

describe('Scrape', () => {
  it('sums series by labels; absent series are 0', () => {
    const scrape = Scrape.parse(FIRST, 0);
    expect(scrape.sum('submissions_total')).toBe(11);
    expect(scrape.sum('submissions_total', { result: 'accepted' })).toBe(4);
    expect(scrape.sum('submissions_total', { result: 'replayed' })).toBe(0);
    expect(scrape.sum('subscriptions_active')).toBe(0);
    expect(scrape.has('subscriptions_active')).toBe(false);
    expect(scrape.has('snapshot_version', { tier: 'cache' })).toBe(true);
  });
});

describe('summarize', () => {
  it('on the first scrape: totals and gauges, no rates, fold latency as the mean since start', () => {
    const status = summarize(null, Scrape.parse(FIRST, 1000));
    expect(status.writesPerSecond).toBeNull();
    expect(status.writesTotal).toBe(4);
    expect(status.readsPerSecond).toEqual({ CACHE: null, SUMMARY: null, LIVE: null });
    expect(status.readsTotal).toEqual({ CACHE: 10, SUMMARY: 2, LIVE: 0 });
    expect(status.foldLatencyMs).toBe(250);
    expect(status.outboxDepth).toBe(3);
    expect(status.outboxOldestAgeSeconds).toBe(1.5);
    expect(status.subscribers).toBe(0);
    expect(status.websocketConnections).toBe(0);
    expect(status.dependencies).toEqual({ database: true, redis: null });
    expect(status.versions).toEqual({ cache: 0, summary: 2, feed: null });
    expect(status.pool).toBeNull();
  });

  it('rates from the deltas between two scrapes, fold latency from Δsum / Δcount', () => {
    const status = summarize(Scrape.parse(FIRST, 1000), Scrape.parse(SECOND, 3000));
    // accepted 4 → 9 and replayed 0 → 1 in 2 s; invalid does not count.
    expect(status.writesPerSecond).toBe(3);
    expect(status.writesTotal).toBe(10);
    expect(status.readsPerSecond).toEqual({ CACHE: 10, SUMMARY: 0, LIVE: 0.5 });
    // 3 folds took 0.12 s together.
    expect(status.foldLatencyMs).toBeCloseTo(40, 9);
    expect(status.foldsTotal).toBe(5);
    expect(status.outboxDepth).toBe(0);
    expect(status.subscribers).toBe(3);
    expect(status.websocketConnections).toBe(2);
    expect(status.dependencies).toEqual({ database: true, redis: false });
    expect(status.versions).toEqual({ cache: 5, summary: 5, feed: null });
    expect(status.pool).toEqual({ inUse: 2, max: 16 });
  });

  it('no fold between scrapes: no latency; a restart (counters went down) counts from zero', () => {
    const first = Scrape.parse(SECOND, 0);
    expect(summarize(first, Scrape.parse(SECOND, 2000)).foldLatencyMs).toBeNull();
    expect(summarize(first, Scrape.parse(SECOND, 2000)).writesPerSecond).toBe(0);
    const restarted = Scrape.parse(
      'tax_budget_submissions_total{result="accepted"} 2\n' +
        'tax_budget_fold_duration_seconds_sum 0.01\ntax_budget_fold_duration_seconds_count 1\n',
      2000,
    );
    const status = summarize(first, restarted);
    expect(status.writesPerSecond).toBe(1);
    expect(status.foldLatencyMs).toBeCloseTo(10, 9);
  });

  it('no rate when no time passed', () => {
    const scrape = Scrape.parse(FIRST, 5);
    expect(summarize(scrape, Scrape.parse(SECOND, 5)).writesPerSecond).toBeNull();
  });
});

describe('Series', () => {
  it('keeps the last points and knows the newest value', () => {
    const series = new Series(3);
    for (const value of [1, 2, null, 4, null]) series.push(value);
    expect(series.values).toEqual([null, 4, null]);
    expect(series.latest()).toBe(4);
    expect(new Series().latest()).toBeNull();
  });
});

describe('fetchMetrics', () => {
  const answer = (status: number, type: string, body: string) => async () =>
    new Response(body, { status, headers: { 'content-type': type } });

  it('parses what /metrics serves', async () => {
    const result = await fetchMetrics(
      answer(200, 'application/openmetrics-text; version=1.0.0; charset=utf-8', FIRST),
      () => 42,
    );
    expect(result.served).toBe(true);
    if (result.served) {
      expect(result.scrape.at).toBe(42);
      expect(result.scrape.sum('outbox_depth')).toBe(3);
    }
  });

  it('says "not served here" for the app’s 404 page or any other answer', async () => {
    expect(await fetchMetrics(answer(404, 'text/html; charset=utf-8', '<!doctype html>'))).toEqual({
      served: false,
      reason: 'HTTP 404',
    });
    expect((await fetchMetrics(answer(200, 'text/html', '<!doctype html>'))).served).toBe(false);
  });
});
