// The history page: this browser's own submissions (through the voter token), newest first.

import { describeLargest, fromPercentage } from '../allocation';
import { ApiError, request } from '../api/graphql';
import { HISTORY, type Submission } from '../api/operations';
import { formatDateTime, h, replace } from '../dom';
import { resultPath } from '../router';
import type { View } from './view';

/** The server's largest page; more than anyone is likely to submit from one browser. */
const PAGE = 100;

function summary(submission: Submission): HTMLElement {
  const shares = submission.allocations
    .map((a) => ({ ...a, hundredths: fromPercentage(a.percentage) }))
    .filter((a) => a.hundredths > 0);
  return h(
    'div',
    { class: 'history-summary' },
    h(
      'div',
      { class: 'stack', 'aria-hidden': 'true' },
      ...shares.map((a) =>
        h('span', { style: `width: ${a.hundredths / 100}%; background: ${a.category.color}`, title: a.category.name }),
      ),
    ),
    h(
      'p',
      { class: 'largest' },
      describeLargest(shares.map((a) => ({ name: a.category.name, hundredths: a.hundredths }))),
    ),
  );
}

/** What the colours of the bars stand for, once for the page. */
function legend(submissions: Submission[]): HTMLElement {
  const seen = new Map<string, { name: string; color: string; order: number }>();
  for (const submission of submissions) {
    for (const { category } of submission.allocations) {
      seen.set(category.id, { name: category.name, color: category.color, order: category.displayOrder });
    }
  }
  return h(
    'ul',
    { class: 'legend', id: 'history-legend', 'aria-label': 'Colours of the bars' },
    ...[...seen.values()]
      .sort((a, b) => a.order - b.order)
      .map((c) =>
        h('li', {}, h('span', { class: 'swatch', style: `--swatch: ${c.color}`, 'aria-hidden': 'true' }), c.name),
      ),
  );
}

export const historyView: View = (root, { voter }) => {
  const controller = new AbortController();
  const heading = () => h('h1', {}, 'Your submissions');

  const privacyButton = (label: string) => {
    const button = h('button', { type: 'button', class: 'button' }, label);
    button.addEventListener('click', () => voter.reconsider());
    return button;
  };

  const render = async () => {
    const token = voter.token();
    if (voter.consent() === 'declined') {
      replace(
        root,
        heading(),
        h(
          'p',
          {},
          'You chose not to keep a voter token in this browser, so there is no history to show. You can still submit and see results.',
        ),
        privacyButton('Change privacy choice'),
      );
      return;
    }
    if (!token) {
      replace(
        root,
        heading(),
        h('p', { id: 'history-empty' }, 'No submissions from this browser yet.'),
        voter.consent() === 'undecided'
          ? h(
              'p',
              {},
              'To see your submissions here later, allow this browser to keep your voter token (see the question at the top of the page).',
            )
          : null,
        h('p', {}, h('a', { href: '/', 'data-link': true }, 'Make an allocation')),
      );
      return;
    }
    replace(root, heading(), h('p', { class: 'loading', role: 'status' }, 'Loading your submissions…'));
    try {
      const { mySubmissions } = await request(HISTORY, { first: PAGE }, { token, signal: controller.signal });
      if (mySubmissions.length === 0) {
        replace(
          root,
          heading(),
          h('p', { id: 'history-empty' }, 'No submissions yet.'),
          h('p', {}, h('a', { href: '/', 'data-link': true }, 'Make an allocation')),
        );
        return;
      }
      replace(
        root,
        heading(),
        h(
          'p',
          { class: 'lede' },
          voter.consent() === 'undecided'
            ? 'Newest first. To keep this history after you close the tab, answer the question at the top of the page with “Keep my history”.'
            : 'Newest first.',
        ),
        legend(mySubmissions),
        h(
          'ol',
          { class: 'history', id: 'history-list' },
          ...mySubmissions.map((submission) =>
            h(
              'li',
              { 'data-submission': submission.id },
              h(
                'a',
                { href: resultPath(submission.id), 'data-link': true },
                h('time', { datetime: submission.createdAt }, formatDateTime(submission.createdAt)),
              ),
              summary(submission),
            ),
          ),
        ),
      );
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error instanceof ApiError && error.code === 'UNAUTHENTICATED') {
        voter.forget();
        replace(
          root,
          heading(),
          h(
            'p',
            { role: 'alert' },
            'This browser’s voter token is no longer recognised, so it was forgotten. New submissions will start a new history.',
          ),
        );
        return;
      }
      const retry = h('button', { type: 'button', class: 'button' }, 'Try again');
      retry.addEventListener('click', () => void render());
      const message = error instanceof ApiError ? error.message : 'Your submissions could not be loaded.';
      replace(root, heading(), h('p', { class: 'error-text', role: 'alert' }, message), retry);
    }
  };

  void render();
  const stop = voter.onChange(() => void render());
  return () => {
    controller.abort();
    stop();
  };
};
