// The consent banner: asked before a voter token is kept in this browser. Accepting keeps
// history; declining still allows submitting and seeing results.

import { h, replace } from '../dom';
import type { Voter } from '../voter';

export function mountConsentBanner(container: HTMLElement, voter: Voter): void {
  const render = () => {
    if (voter.consent() !== 'undecided') {
      replace(container);
      return;
    }
    const accept = h('button', { type: 'button', class: 'button primary', id: 'consent-accept' }, 'Keep my history');
    const decline = h('button', { type: 'button', class: 'button', id: 'consent-decline' }, 'No thanks');
    accept.addEventListener('click', () => voter.accept());
    decline.addEventListener('click', () => voter.decline());
    replace(
      container,
      h(
        'section',
        { class: 'consent', 'aria-labelledby': 'consent-title', id: 'consent-banner' },
        h('h2', { id: 'consent-title' }, 'Keep your history in this browser?'),
        h(
          'p',
          {},
          'When you submit, the server gives this browser an anonymous voter token. If you allow it, the token is ',
          'kept here (in local storage) so the History page can list your submissions. It holds no personal data ',
          'and is not shared. Without it you can still submit and see results.',
        ),
        h('div', { class: 'actions' }, accept, decline),
      ),
    );
  };
  voter.onChange(render);
  render();
}
