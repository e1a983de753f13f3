// The result page, as a story: a headline naming the largest differences from the national
// average, a share button, then the chart and a table with the difference per category (above
// and below in colour, with an arrow and words), then where the visitor stands in each
// category's national distribution (views/distributions.ts). The national column and the
// distributions follow the live average, so a result opened right after submitting soon
// includes that submission.

import { formatDifference, formatHundredths, fromPercentage, headline } from '../allocation';
import { ApiError, request } from '../api/graphql';
import { watchAggregates } from '../api/live';
import { type AggregateSnapshot, RESULT, type Submission } from '../api/operations';
import { Comparison } from '../charts';
import { type Child, formatDateTime, h, replace } from '../dom';
import { type Distributions, distributions } from './distributions';
import type { View } from './view';

/** National average per category id, in hundredths. */
function nationalById(snapshot: AggregateSnapshot): Map<string, number> {
  return new Map(snapshot.categories.map((c) => [c.category.id, fromPercentage(c.averagePercentage)]));
}

/** "12.50 %"; on a phone the unit moves into the column header to make room. */
function percentCell(hundredths: number): Child[] {
  return [formatHundredths(hundredths), h('span', { class: 'unit' }, ' %')];
}

function describeSnapshot(snapshot: AggregateSnapshot): string {
  const count = snapshot.totalSubmissions;
  const people = count === 1 ? '1 submission' : `${count.toLocaleString()} submissions`;
  return `National average of ${people}, as of ${formatDateTime(snapshot.updatedAt)}.`;
}

export const resultView =
  (id: string): View =>
  (root) => {
    const controller = new AbortController();
    let chart: Comparison | null = null;
    let spread: Distributions | null = null;
    let stopLive: (() => void) | null = null;

    replace(root, h('h1', {}, 'Result'), h('p', { class: 'loading', role: 'status' }, 'Loading…'));

    const render = (submission: Submission, snapshot: AggregateSnapshot) => {
      const rows = submission.allocations.map((allocation) => ({
        category: allocation.category,
        mine: fromPercentage(allocation.percentage),
      }));
      const nationalCells = new Map<string, { national: HTMLTableCellElement; difference: HTMLTableCellElement }>();
      const caption = h('caption', {}, describeSnapshot(snapshot));
      const body = h(
        'tbody',
        {},
        ...rows.map(({ category, mine }) => {
          const national = h('td', { class: 'num', 'data-column': 'national' });
          const difference = h('td', { class: 'num', 'data-column': 'difference' });
          nationalCells.set(category.id, { national, difference });
          return h(
            'tr',
            { 'data-category': category.slug },
            h(
              'th',
              { scope: 'row' },
              h('span', { class: 'swatch', style: `--swatch: ${category.color}`, 'aria-hidden': 'true' }),
              category.name,
            ),
            h('td', { class: 'num', 'data-column': 'mine' }, ...percentCell(mine)),
            national,
            difference,
          );
        }),
      );
      const showNational = (current: AggregateSnapshot) => {
        const national = nationalById(current);
        replace(caption, describeSnapshot(current));
        for (const { category, mine } of rows) {
          const cells = nationalCells.get(category.id);
          const average = national.get(category.id) ?? 0;
          if (!cells) continue;
          replace(cells.national, ...percentCell(average));
          replace(
            cells.difference,
            mine === average ? null : h('span', { class: 'arrow', 'aria-hidden': 'true' }, mine > average ? '▲' : '▼'),
            formatDifference(mine - average),
            mine === average
              ? null
              : h('span', { class: 'visually-hidden' }, mine > average ? ' above average' : ' below average'),
          );
          cells.difference.className = `num ${mine > average ? 'more' : mine < average ? 'less' : ''}`;
        }
        replace(
          story,
          headline(
            rows.map(({ category, mine }) => ({ name: category.name, mine, average: national.get(category.id) ?? 0 })),
          ),
        );
        chart?.updateNational(rows.map(({ category }) => (national.get(category.id) ?? 0) / 100));
      };

      const story = h('h2', { id: 'headline' });
      const link = new URL(window.location.pathname, window.location.origin).toString();
      const linkField = h('input', {
        id: 'share-link',
        class: 'share-link',
        type: 'text',
        readonly: true,
        value: link,
        'aria-label': 'Link to this result',
      });
      const canShare = typeof navigator.share === 'function';
      const share = h(
        'button',
        { type: 'button', class: 'button primary', id: 'share' },
        canShare ? 'Share' : 'Copy link',
      );
      const copied = h('span', { class: 'hint', role: 'status', id: 'share-status' });
      // The Web Share API where the browser has it (phones), the clipboard otherwise, and the
      // selected link as a last resort.
      share.addEventListener('click', async () => {
        if (canShare) {
          try {
            await navigator.share({ title: document.title, text: story.textContent ?? '', url: link });
            return;
          } catch (error) {
            if (error instanceof DOMException && error.name === 'AbortError') return;
          }
        }
        try {
          await navigator.clipboard.writeText(link);
          replace(copied, 'Link copied.');
        } catch {
          linkField.select();
          replace(copied, 'Press Ctrl+C (⌘C) to copy the selected link.');
        }
      });
      linkField.addEventListener('focus', () => linkField.select());

      spread = distributions(
        submission.id,
        submission.allocations.map((allocation) => ({ category: allocation.category, mine: allocation.percentage })),
      );
      const canvas = h('canvas', {
        id: 'comparison-chart',
        role: 'img',
        'aria-label': 'Bar chart comparing this allocation with the national average; the table below has the numbers',
      });
      replace(
        root,
        h('h1', {}, 'Your result'),
        h(
          'section',
          { class: 'story card', 'aria-labelledby': 'headline' },
          story,
          h('p', {}, `Submitted ${formatDateTime(submission.createdAt)}, compared with the national average now.`),
        ),
        h('div', { class: 'share' }, share, linkField, copied),
        h('figure', { class: 'comparison card' }, h('div', { class: 'chart-box tall' }, canvas)),
        h(
          'div',
          { class: 'table-scroll' },
          h(
            'table',
            { class: 'result-table', id: 'result-table' },
            caption,
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', { scope: 'col' }, 'Category'),
                h('th', { scope: 'col', class: 'num' }, 'This allocation', h('span', { class: 'header-unit' }, ' (%)')),
                h(
                  'th',
                  { scope: 'col', class: 'num' },
                  'National average',
                  h('span', { class: 'header-unit' }, ' (%)'),
                ),
                h(
                  'th',
                  { scope: 'col', class: 'num' },
                  h('span', { class: 'wide-label' }, 'Difference'),
                  h('span', { class: 'phone-label', 'aria-hidden': 'true' }, 'Diff.'),
                ),
              ),
            ),
            body,
          ),
        ),
        spread.element,
        h(
          'p',
          {},
          h('a', { href: '/', 'data-link': true }, 'Make another allocation'),
          ' · ',
          h('a', { href: '/live', 'data-link': true }, 'Watch the live average'),
          ' · ',
          h('a', { href: '/trends', 'data-link': true }, 'See how it changed'),
        ),
      );
      chart = new Comparison(
        canvas,
        rows.map(({ category }) => category.name),
        rows.map(({ mine }) => mine / 100),
        rows.map(() => 0),
      );
      showNational(snapshot);
      let shown = snapshot.version;
      stopLive = watchAggregates({
        snapshot: (next) => {
          if (next.version <= shown) return;
          shown = next.version;
          showNational(next);
          spread?.refresh(next.version);
        },
      });
    };

    const load = async () => {
      try {
        const data = await request(RESULT, { id }, { signal: controller.signal });
        if (!data.submission) {
          replace(
            root,
            h('h1', {}, 'Result not found'),
            h('p', {}, 'There is no submission with this link. Check that it was copied whole.'),
            h('p', {}, h('a', { href: '/', 'data-link': true }, 'Make an allocation')),
          );
          return;
        }
        render(data.submission, data.aggregates);
      } catch (error) {
        if (controller.signal.aborted) return;
        const message = error instanceof ApiError ? error.message : 'The result could not be loaded.';
        const retry = h('button', { type: 'button', class: 'button' }, 'Try again');
        retry.addEventListener('click', () => void load());
        replace(root, h('h1', {}, 'Result'), h('p', { class: 'error-text', role: 'alert' }, message), retry);
      }
    };

    void load();
    return () => {
      controller.abort();
      stopLive?.();
      chart?.destroy();
      spread?.destroy();
    };
  };
