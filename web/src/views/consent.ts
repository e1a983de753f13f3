// The consent notice: asked before a voter token is kept in this browser. Accepting keeps
// history; declining still allows submitting and seeing results. It is a compact notice in the
// flow under the header, never over the form; "Not now" hides it for this visit without
// deciding (the token then stays in memory only, as while undecided).

import { h, replace } from '../dom';
import type { Voter } from '../voter';

const CLOSE_ICON =
  '<svg viewBox="0 0 20 20" aria-hidden="true" focusable="false"><path d="M5 5l10 10M15 5L5 15" stroke="currentColor" stroke-width="2" stroke-linecap="round" fill="none"/></svg>';

export interface ConsentNotice {
  /** Shows the notice again (the footer's "Privacy choice"). */
  reopen(): void;
}

export function mountConsentBanner(container: HTMLElement, voter: Voter): ConsentNotice {
  let dismissed = false;
  const render = () => {
    if (voter.consent() !== 'undecided' || dismissed) {
      replace(container);
      return;
    }
    const accept = h(
      'button',
      { type: 'button', class: 'button small primary', id: 'consent-accept' },
      'Keep my history',
    );
    const decline = h('button', { type: 'button', class: 'button small', id: 'consent-decline' }, 'No thanks');
    const close = h('button', { type: 'button', class: 'icon-button dismiss', id: 'consent-dismiss' });
    // A fixed icon from this file, not data: the one place markup is parsed.
    close.innerHTML = CLOSE_ICON;
    close.append(h('span', { class: 'visually-hidden' }, 'Not now'));
    accept.addEventListener('click', () => voter.accept());
    decline.addEventListener('click', () => voter.decline());
    close.addEventListener('click', () => {
      dismissed = true;
      render();
      document.getElementById('main')?.focus();
    });
    replace(
      container,
      h(
        'section',
        { class: 'consent', 'aria-labelledby': 'consent-title', id: 'consent-banner' },
        h(
          'div',
          { class: 'consent-text' },
          h('h2', { id: 'consent-title' }, 'Keep your history in this browser?'),
          ' An anonymous token, no personal data, not shared.',
        ),
        close,
        h('div', { class: 'actions' }, accept, decline),
      ),
    );
  };
  voter.onChange(render);
  render();
  return {
    reopen() {
      dismissed = false;
      render();
    },
  };
}
