// The server's Prometheus metrics (`GET /metrics`, OpenMetrics text) as the status page shows
// them: a small parser, and the rates between two scrapes.
//
// Why a parser of our own: the npm parsers of the exposition format (prom2json-style
// packages, Prometheus client libraries) are written for Node, pull in dependencies or parse
// far more than this page needs (exemplars, metadata, timestamps); the page needs samples by
// name and labels, which takes fifty lines here and costs the app's JS budget next to nothing.

/** One line of the exposition: `name{label="value",…} value [timestamp]`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The series names, all with this prefix. */
export const PREFIX = 'tax_budget_';

/** The tiers aggregate reads are answered from, in the order reads try them. */
export const TIERS = ['CACHE', 'SUMMARY', 'LIVE'] as const;
export type Tier = (typeof TIERS)[number];

/** Snapshot versions, per tier that keeps one. */
export const VERSION_TIERS = ['cache', 'summary', 'feed'] as const;
export type VersionTier = (typeof VERSION_TIERS)[number];

function parseValue(text: string): number {
  switch (text) {
    case '+Inf':
    case 'Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
    case 'NaN':
      return NaN;
    default:
      // Number('') is 0: an empty value is not a value.
      return text === '' ? NaN : Number(text);
  }
}

/** Reads `{a="1",b="x\"y"}` from `line` at `start` (the `{`); returns the labels and the end. */
function parseLabels(line: string, start: number): { labels: Record<string, string>; end: number } | null {
  const labels: Record<string, string> = {};
  let i = start + 1;
  for (;;) {
    while (line[i] === ' ' || line[i] === ',') i++;
    if (line[i] === '}') return { labels, end: i + 1 };
    const eq = line.indexOf('=', i);
    if (eq < 0 || line[eq + 1] !== '"') return null;
    const key = line.slice(i, eq).trim();
    let value = '';
    i = eq + 2;
    for (;;) {
      const c = line[i];
      if (c === undefined) return null;
      if (c === '"') break;
      if (c === '\\') {
        const next = line[i + 1];
        value += next === 'n' ? '\n' : (next ?? '');
        i += 2;
      } else {
        value += c;
        i++;
      }
    }
    labels[key] = value;
    i++;
  }
}

/** Every sample in an exposition (text format 0.0.4 or OpenMetrics); unreadable lines are skipped. */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!match) continue;
    const name = match[0];
    let labels: Record<string, string> = {};
    let rest = line.slice(name.length);
    if (rest.startsWith('{')) {
      const parsed = parseLabels(line, name.length);
      if (!parsed) continue;
      labels = parsed.labels;
      rest = line.slice(parsed.end);
    }
    const field = rest.trim().split(/\s+/)[0] ?? '';
    const value = parseValue(field);
    if (Number.isNaN(value) && field !== 'NaN') continue;
    samples.push({ name, labels, value });
  }
  return samples;
}

/** One scrape: its samples and when it was taken (ms, any monotonic clock). */
export class Scrape {
  constructor(
    readonly samples: readonly Sample[],
    readonly at: number,
  ) {}

  static parse(text: string, at: number): Scrape {
    return new Scrape(parseExposition(text), at);
  }

  /** The sum over the series `PREFIX + name` whose labels include `where`; absent: 0. */
  sum(name: string, where: Record<string, string> = {}): number {
    return this.find(name, where).reduce((total, s) => total + s.value, 0);
  }

  /** Whether any series `PREFIX + name` with those labels is there at all. */
  has(name: string, where: Record<string, string> = {}): boolean {
    return this.find(name, where).length > 0;
  }

  private find(name: string, where: Record<string, string>): Sample[] {
    const full = PREFIX + name;
    return this.samples.filter(
      (s) => s.name === full && Object.entries(where).every(([key, value]) => s.labels[key] === value),
    );
  }
}

/** What the status page shows of one scrape, with rates since the one before. */
export interface Status {
  /** Accepted and replayed submissions per second; null on the first scrape. */
  writesPerSecond: number | null;
  /** Accepted and replayed submissions since the server started. */
  writesTotal: number;
  readsPerSecond: Record<Tier, number | null>;
  readsTotal: Record<Tier, number>;
  /** Mean duration of the folds between the two scrapes (ms); on the first scrape the mean
   * since start; null when no fold ran. */
  foldLatencyMs: number | null;
  foldsTotal: number;
  foldErrorsTotal: number;
  outboxDepth: number;
  outboxOldestAgeSeconds: number;
  subscribers: number;
  websocketConnections: number;
  /** null: the dependency is not reported (no Redis configured). */
  dependencies: { database: boolean | null; redis: boolean | null };
  versions: Record<VersionTier, number | null>;
  /** Database pool connections in use and at most; null when not reported. */
  pool: { inUse: number; max: number } | null;
}

const WRITES = [{ result: 'accepted' }, { result: 'replayed' }];

/** The increase of a counter between scrapes; after a restart (it went down) its new value. */
function increase(before: number, after: number): number {
  return after >= before ? after - before : after;
}

function perSecond(previous: Scrape | null, current: Scrape, value: (scrape: Scrape) => number): number | null {
  if (!previous) return null;
  const seconds = (current.at - previous.at) / 1000;
  if (!(seconds > 0)) return null;
  return increase(value(previous), value(current)) / seconds;
}

function writes(scrape: Scrape): number {
  return WRITES.reduce((total, where) => total + scrape.sum('submissions_total', where), 0);
}

function gaugeOrNull(scrape: Scrape, name: string, where: Record<string, string>): number | null {
  return scrape.has(name, where) ? scrape.sum(name, where) : null;
}

function up(scrape: Scrape, dependency: string): boolean | null {
  const value = gaugeOrNull(scrape, 'dependency_up', { dependency });
  return value === null ? null : value > 0;
}

export function summarize(previous: Scrape | null, current: Scrape): Status {
  const readsPerSecond = {} as Record<Tier, number | null>;
  const readsTotal = {} as Record<Tier, number>;
  for (const tier of TIERS) {
    readsPerSecond[tier] = perSecond(previous, current, (s) => s.sum('aggregate_reads_total', { tier }));
    readsTotal[tier] = current.sum('aggregate_reads_total', { tier });
  }
  const versions = {} as Record<VersionTier, number | null>;
  for (const tier of VERSION_TIERS) versions[tier] = gaugeOrNull(current, 'snapshot_version', { tier });

  const count = (s: Scrape) => s.sum('fold_duration_seconds_count');
  const total = (s: Scrape) => s.sum('fold_duration_seconds_sum');
  let foldLatencyMs: number | null = null;
  const folds = previous ? increase(count(previous), count(current)) : count(current);
  if (folds > 0) {
    const seconds = previous && count(current) >= count(previous) ? total(current) - total(previous) : total(current);
    foldLatencyMs = (seconds / folds) * 1000;
  }

  return {
    writesPerSecond: perSecond(previous, current, writes),
    writesTotal: writes(current),
    readsPerSecond,
    readsTotal,
    foldLatencyMs,
    foldsTotal: current.sum('folds_total'),
    foldErrorsTotal: current.sum('fold_errors_total'),
    outboxDepth: current.sum('outbox_depth'),
    outboxOldestAgeSeconds: current.sum('outbox_oldest_age_seconds'),
    subscribers: current.sum('subscriptions_active'),
    websocketConnections: current.sum('websocket_connections'),
    dependencies: { database: up(current, 'database'), redis: up(current, 'redis') },
    versions,
    pool: current.has('database_pool_connections', { state: 'max' })
      ? {
          inUse: current.sum('database_pool_connections', { state: 'in_use' }),
          max: current.sum('database_pool_connections', { state: 'max' }),
        }
      : null,
  };
}

/** The last `size` values of a series (null: no value at that scrape, drawn as a gap). */
export class Series {
  readonly values: (number | null)[] = [];

  constructor(readonly size = 60) {}

  push(value: number | null): void {
    this.values.push(value);
    if (this.values.length > this.size) this.values.splice(0, this.values.length - this.size);
  }

  /** The newest value that is not null. */
  latest(): number | null {
    for (let i = this.values.length - 1; i >= 0; i--) {
      const value = this.values[i];
      if (value !== null && value !== undefined) return value;
    }
    return null;
  }
}

/** What a fetch of `/metrics` gave. */
export type MetricsResult = { served: true; scrape: Scrape } | { served: false; reason: string };

/** Fetches `/metrics` from this origin. Not served (switched off, or on an address of its
 * own) the server answers 404 with the app's page: that is "not served here", not an error. */
export async function fetchMetrics(
  fetcher: typeof fetch = fetch,
  now: () => number = () => performance.now(),
): Promise<MetricsResult> {
  const response = await fetcher('/metrics', {
    cache: 'no-store',
    headers: { accept: 'application/openmetrics-text, text/plain' },
  });
  const type = response.headers.get('content-type') ?? '';
  if (!response.ok || !/openmetrics-text|text\/plain/.test(type)) {
    return { served: false, reason: `HTTP ${response.status}` };
  }
  const text = await response.text();
  return { served: true, scrape: Scrape.parse(text, now()) };
}
