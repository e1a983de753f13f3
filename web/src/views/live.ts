// The live page, a dashboard: the national average as one bar per category with its value on
// the bar, sorted by size or in the fixed order (the visitor's choice), updated in place by
// `aggregatesUpdated` with smooth transitions (none under reduced motion); the number of
// submissions as it is on load (later changes count over); when it last changed; whether the
// connection is up. The bars are HTML, so they are their own accessible list: no second copy.

import { formatHundredths, fromPercentage } from '../allocation';
import { type ConnectionState, watchAggregates } from '../api/live';
import type { AggregateSnapshot } from '../api/operations';
import { formatDateTime, h, prefersReducedMotion, replace } from '../dom';
import type { View } from './view';

const STATE_TEXT: Record<ConnectionState, string> = {
  connecting: 'Connecting…',
  connected: 'Live',
  reconnecting: 'Reconnecting…',
};

type Order = 'size' | 'fixed';
/** Kept while the visitor moves between pages. */
let order: Order = 'size';

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

interface Bar {
  row: HTMLLIElement;
  bar: HTMLElement;
  value: HTMLElement;
}

export const liveView: View = (root) => {
  const state = h(
    'p',
    { id: 'connection-state', class: 'connection', role: 'status', 'data-state': 'connecting' },
    STATE_TEXT.connecting,
  );
  const count = h('strong', { id: 'total-submissions', 'data-value': '' }, '–');
  const noun = h('span', { class: 'label' }, 'submissions');
  const updated = h('time', { id: 'last-update' }, 'not yet');
  const bySize = h(
    'button',
    { type: 'button', id: 'order-size', 'aria-pressed': String(order === 'size') },
    'Largest first',
  );
  const fixed = h(
    'button',
    { type: 'button', id: 'order-fixed', 'aria-pressed': String(order === 'fixed') },
    'Fixed order',
  );
  const list = h('ol', { class: 'bars card', id: 'live-bars', 'aria-label': 'National average per category' });

  replace(
    root,
    h('h1', {}, 'Live national average'),
    h(
      'div',
      { class: 'live-header' },
      h('p', { class: 'stat count' }, count, noun),
      h('p', { class: 'stat' }, h('span', { class: 'label' }, 'Last update'), updated),
      state,
      h('div', { class: 'order-switch', role: 'group', 'aria-label': 'Order of the bars' }, bySize, fixed),
    ),
    list,
  );

  const bars = new Map<string, Bar>();
  let latest: AggregateSnapshot | null = null;
  let shownTotal: number | null = null;
  let stopCounting = () => {};

  /** Moves rows to their new places, animating from the old ones (FLIP). */
  const arrange = (slugs: string[]) => {
    const animate = !prefersReducedMotion();
    const before = new Map([...bars].map(([slug, bar]) => [slug, bar.row.getBoundingClientRect().top]));
    for (const slug of slugs) {
      const bar = bars.get(slug);
      if (bar) list.append(bar.row);
    }
    if (!animate) return;
    for (const [slug, bar] of bars) {
      const was = before.get(slug);
      if (was === undefined || !bar.row.isConnected) continue;
      const shift = was - bar.row.getBoundingClientRect().top;
      if (shift === 0) continue;
      bar.row.style.transition = 'none';
      bar.row.style.transform = `translateY(${shift}px)`;
      // Read layout once so the browser takes the start position before the transition.
      void bar.row.offsetHeight;
      bar.row.style.transition = '';
      bar.row.style.transform = '';
    }
  };

  const draw = (snapshot: AggregateSnapshot) => {
    const categories = [...snapshot.categories].sort((a, b) =>
      order === 'size'
        ? b.averagePercentage - a.averagePercentage || a.category.displayOrder - b.category.displayOrder
        : a.category.displayOrder - b.category.displayOrder,
    );
    // Bar lengths relative to the largest average, so the leader fills the track.
    const largest = Math.max(1, ...categories.map((c) => fromPercentage(c.averagePercentage)));
    for (const c of categories) {
      const slug = c.category.slug;
      let bar = bars.get(slug);
      if (!bar) {
        const fill = h('span', { class: 'bar', 'aria-hidden': 'true' });
        const value = h('span', { class: 'bar-value', 'data-value': '' });
        const row = h(
          'li',
          { class: 'bar-row', 'data-category': slug, style: `--swatch: ${c.category.color}` },
          h('span', { class: 'bar-name' }, h('span', { class: 'swatch', 'aria-hidden': 'true' }), c.category.name),
          h('span', { class: 'bar-track' }, fill, value),
        );
        bar = { row, bar: fill, value };
        bars.set(slug, bar);
      }
      const hundredths = fromPercentage(c.averagePercentage);
      bar.bar.style.width = `calc((100% - 4.5rem) * ${hundredths / largest})`;
      replace(bar.value, `${formatHundredths(hundredths)} %`);
      bar.value.dataset.value = formatHundredths(hundredths);
    }
    arrange(categories.map((c) => c.category.slug));
  };

  const show = (snapshot: AggregateSnapshot) => {
    latest = snapshot;
    draw(snapshot);
    stopCounting();
    // The first number shown is the real one; only later changes count over.
    stopCounting = countTo(count, shownTotal ?? snapshot.totalSubmissions, snapshot.totalSubmissions);
    shownTotal = snapshot.totalSubmissions;
    count.dataset.value = String(snapshot.totalSubmissions);
    replace(noun, snapshot.totalSubmissions === 1 ? 'submission' : 'submissions');
    updated.dateTime = snapshot.updatedAt;
    replace(updated, formatDateTime(snapshot.updatedAt));
  };

  const choose = (next: Order) => {
    order = next;
    bySize.setAttribute('aria-pressed', String(next === 'size'));
    fixed.setAttribute('aria-pressed', String(next === 'fixed'));
    if (latest) draw(latest);
  };
  bySize.addEventListener('click', () => choose('size'));
  fixed.addEventListener('click', () => choose('fixed'));

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
  };
};
