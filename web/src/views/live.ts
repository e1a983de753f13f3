// The live page: the national average as bars updated in place by `aggregatesUpdated`, the
// number of submissions, when it last changed, and whether the connection is up.

import { formatHundredths, fromPercentage } from '../allocation';
import { type ConnectionState, watchAggregates } from '../api/live';
import type { AggregateSnapshot } from '../api/operations';
import { CategoryBars } from '../charts';
import { formatDateTime, h, prefersReducedMotion, replace } from '../dom';
import type { View } from './view';

const STATE_TEXT: Record<ConnectionState, string> = {
  connecting: 'Connecting…',
  connected: 'Live',
  reconnecting: 'Reconnecting…',
};

/** Counts the shown number up (or down) to `target` instead of jumping. */
function countTo(element: HTMLElement, from: number, target: number): () => void {
  const show = (value: number) => replace(element, value.toLocaleString());
  if (from === target || prefersReducedMotion()) {
    show(target);
    return () => {};
  }
  const start = performance.now();
  const duration = 600;
  let frame = requestAnimationFrame(function step(now) {
    const progress = Math.min(1, (now - start) / duration);
    show(Math.round(from + (target - from) * progress));
    if (progress < 1) frame = requestAnimationFrame(step);
  });
  return () => {
    cancelAnimationFrame(frame);
    show(target);
  };
}

export const liveView: View = (root) => {
  const state = h(
    'p',
    { id: 'connection-state', class: 'connection', role: 'status', 'data-state': 'connecting' },
    STATE_TEXT.connecting,
  );
  const count = h('strong', { id: 'total-submissions', 'data-value': '' }, '–');
  const noun = h('span', {}, 'submissions');
  const updated = h('time', { id: 'last-update' }, 'not yet');
  const canvas = h('canvas', {
    id: 'live-chart',
    role: 'img',
    'aria-label': 'Bar chart of the national average per category; the list beside it has the numbers',
  });
  const values = h('dl', { class: 'live-values', id: 'live-values' });

  replace(
    root,
    h('h1', {}, 'Live national average'),
    h(
      'div',
      { class: 'live-header' },
      state,
      h('p', { class: 'count' }, count, ' ', noun),
      h('p', { class: 'hint' }, 'Last update: ', updated),
    ),
    h(
      'div',
      { class: 'columns' },
      h('figure', { class: 'live-chart' }, h('div', { class: 'chart-box tall' }, canvas)),
      values,
    ),
  );

  const chart = new CategoryBars(canvas, 'National average');
  let shownTotal = 0;
  let stopCounting = () => {};

  const show = (snapshot: AggregateSnapshot) => {
    const categories = [...snapshot.categories].sort((a, b) => a.category.displayOrder - b.category.displayOrder);
    chart.update(
      categories.map((c) => ({ label: c.category.name, color: c.category.color, value: c.averagePercentage })),
    );
    replace(
      values,
      ...categories.flatMap((c) => [
        h(
          'dt',
          {},
          h('span', { class: 'swatch', style: `--swatch: ${c.category.color}`, 'aria-hidden': 'true' }),
          c.category.name,
        ),
        h('dd', { 'data-category': c.category.slug }, `${formatHundredths(fromPercentage(c.averagePercentage))} %`),
      ]),
    );
    stopCounting();
    stopCounting = countTo(count, shownTotal, snapshot.totalSubmissions);
    shownTotal = snapshot.totalSubmissions;
    count.dataset.value = String(snapshot.totalSubmissions);
    replace(noun, snapshot.totalSubmissions === 1 ? 'submission' : 'submissions');
    updated.dateTime = snapshot.updatedAt;
    replace(updated, formatDateTime(snapshot.updatedAt));
  };

  const stop = watchAggregates({
    snapshot: show,
    state: (next) => {
      state.dataset.state = next;
      replace(state, STATE_TEXT[next]);
    },
  });
  return () => {
    stop();
    stopCounting();
    chart.destroy();
  };
};
