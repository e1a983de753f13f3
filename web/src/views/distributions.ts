// The result page's "Where you stand": per category, how all citizens split it (a histogram
// with the middle half and the median under it) with the visitor's share marked, their rank in
// words, and the median and quartiles. Read by a query of its own (DISTRIBUTION), again when
// the live average moves, at most every few seconds: a result opened right after submitting
// soon counts that submission, and a busy server is not asked for histograms on every fold.

import { formatHundredths, fromPercentage } from '../allocation';
import { ApiError, request } from '../api/graphql';
import { type Category, DISTRIBUTION, type Distribution } from '../api/operations';
import { BUCKETS, DistributionChart, rankSentence, statsLine } from '../distribution';
import { h, replace } from '../dom';

/** The shortest time between two reads of the distribution. */
export const REFRESH_MS = 3_000;

interface Card {
  category: Category;
  /** The visitor's share in percent. */
  mine: number;
  rank: HTMLElement;
  stats: HTMLElement;
  chart: DistributionChart;
}

export interface Distributions {
  element: HTMLElement;
  /** Reads the distribution again when `version` is newer than the one shown. */
  refresh(version: number): void;
  destroy(): void;
}

function citizens(count: number): string {
  return count === 1 ? '1 citizen' : `${count.toLocaleString()} citizens`;
}

export function distributions(id: string, rows: readonly { category: Category; mine: number }[]): Distributions {
  const controller = new AbortController();
  const cards: Card[] = rows.map(({ category, mine }) => ({
    category,
    mine,
    rank: h('p', { class: 'spread-rank', id: `rank-${category.slug}` }),
    stats: h('p', { class: 'spread-stats', id: `stats-${category.slug}` }),
    chart: new DistributionChart(category.name),
  }));
  const lede = h('p', { class: 'hint', id: 'spread-lede' }, 'Loading how all citizens split their taxes…');
  const problem = h('p', { class: 'error-text', role: 'alert', id: 'spread-error', hidden: true });
  const list = h(
    'ul',
    { class: 'spreads', id: 'spreads', hidden: true },
    ...cards.map((card) =>
      h(
        'li',
        { class: 'spread card', 'data-category': card.category.slug },
        h(
          'h3',
          {},
          h('span', { class: 'swatch', style: `--swatch: ${card.category.color}`, 'aria-hidden': 'true' }),
          card.category.name,
          h(
            'span',
            { class: 'spread-own' },
            h('span', { class: 'visually-hidden' }, ', '),
            `you ${formatHundredths(fromPercentage(card.mine))} %`,
          ),
        ),
        card.rank,
        h(
          'div',
          { class: 'spread-figure' },
          card.chart.element,
          h(
            'div',
            { class: 'spread-axis', 'aria-hidden': 'true' },
            h('span', {}, '0 %'),
            h('span', {}, '50 %'),
            h('span', {}, '100 %'),
          ),
        ),
        card.stats,
      ),
    ),
  );
  const element = h(
    'section',
    { class: 'spreads-section', id: 'distributions', 'aria-labelledby': 'distributions-title' },
    h('h2', { id: 'distributions-title' }, 'Where you stand'),
    lede,
    h(
      'ul',
      { class: 'spread-legend', 'aria-label': 'How to read the charts' },
      h('li', {}, h('span', { class: 'key key-bar', 'aria-hidden': 'true' }), 'Citizens per 5-point range'),
      h('li', {}, h('span', { class: 'key key-box', 'aria-hidden': 'true' }), 'Middle half and median'),
      h('li', {}, h('span', { class: 'key key-mine', 'aria-hidden': 'true' }), 'Your share'),
    ),
    problem,
    list,
  );

  let shown = -1;
  let wanted = -1;
  let inFlight = false;
  let lastRead = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const show = (data: Distribution) => {
    // The cards show from the first answer on, so that before it (or without it) no card
    // stands empty.
    list.hidden = false;
    const ranks = new Map(data.submission?.allocations.map((a) => [a.category.id, a.percentileRank]) ?? []);
    const spreads = new Map(data.aggregates.categories.map((c) => [c.category.id, c]));
    const total = data.aggregates.totalSubmissions;
    replace(
      lede,
      total === 0
        ? 'Nobody has been counted yet: the charts fill in as citizens submit.'
        : `How all ${citizens(total)} split each category, and where your share lies among theirs.`,
    );
    for (const card of cards) {
      const spread = spreads.get(card.category.id);
      const rank = ranks.get(card.category.id) ?? null;
      replace(
        card.rank,
        rankSentence({
          name: card.category.name,
          mine: card.mine,
          rank,
          zeroShare: spread?.zeroShare ?? null,
          median: spread?.median ?? null,
        }),
      );
      card.rank.dataset.rank = rank === null ? '' : String(rank);
      const stats = statsLine(spread?.median ?? null, spread?.quartiles ?? null);
      replace(card.stats, stats);
      card.stats.hidden = stats === '';
      card.chart.update({
        buckets: spread?.histogram ?? [],
        total,
        median: spread?.median ?? null,
        quartiles: spread?.quartiles ?? null,
        mine: card.mine,
      });
    }
    element.dataset.version = String(data.aggregates.version);
  };

  const read = async () => {
    clearTimeout(timer);
    timer = undefined;
    inFlight = true;
    lastRead = Date.now();
    // One read answers every change announced before it, even when a tier behind the one that
    // announced it answers older: the next change reads again, never a loop.
    const asking = wanted;
    try {
      const data = await request(DISTRIBUTION, { id, buckets: BUCKETS }, { signal: controller.signal });
      if (controller.signal.aborted) return;
      problem.hidden = true;
      shown = Math.max(shown, asking, data.aggregates.version);
      show(data);
    } catch (error) {
      if (controller.signal.aborted) return;
      shown = Math.max(shown, asking);
      if (list.hidden) replace(lede, '');
      // The comparison above stays; this part says what went wrong and tries again with the
      // next change of the average.
      problem.hidden = false;
      replace(
        problem,
        error instanceof ApiError ? error.message : 'How others split their taxes could not be loaded.',
        ' It is tried again when the average changes.',
      );
    } finally {
      inFlight = false;
    }
    if (!controller.signal.aborted && wanted > shown) schedule();
  };

  const schedule = () => {
    if (inFlight || timer !== undefined || controller.signal.aborted) return;
    timer = setTimeout(() => void read(), Math.max(0, lastRead + REFRESH_MS - Date.now()));
  };

  void read();

  return {
    element,
    refresh(version) {
      wanted = Math.max(wanted, version);
      if (wanted > shown) schedule();
    },
    destroy() {
      controller.abort();
      clearTimeout(timer);
    },
  };
}
