// Boots the single-page app: routes, the consent banner, and page switching without reloads.

import './styles/index.css';
import { featuresOf, parseRoute, type Route, suggestion } from './router';
import { mountConsentBanner } from './views/consent';
import { allocateView } from './views/allocate';
import { historyView } from './views/history';
import { liveView } from './views/live';
import { resultView } from './views/result';
import type { AppContext, View } from './views/view';
import { h, replace } from './dom';
import { Voter, browserStorage } from './voter';

const features = featuresOf(document);

// The server answers unknown paths with this page and status 404; this is what it shows.
const notFoundView: View = (root) => {
  const meant = suggestion(window.location.pathname, features);
  replace(
    root,
    h(
      'section',
      { class: 'not-found', id: 'not-found' },
      h('p', { class: 'code', 'aria-hidden': 'true' }, '404'),
      h('h1', {}, 'Page not found'),
      h('p', { class: 'lede' }, 'There is nothing at ', h('code', {}, window.location.pathname), '.'),
      meant
        ? h(
            'p',
            { id: 'did-you-mean' },
            'Did you mean ',
            h('a', { href: meant.path, ...(meant.app ? { 'data-link': true } : {}) }, meant.name),
            '?',
          )
        : null,
      h(
        'div',
        { class: 'actions' },
        h('a', { href: '/', 'data-link': true, class: 'button primary' }, 'Allocate your taxes'),
        h('a', { href: '/live', 'data-link': true, class: 'button' }, 'See the live average'),
      ),
    ),
  );
};

const TITLES: Record<Route['page'], string> = {
  allocate: 'Allocate',
  result: 'Result',
  history: 'History',
  live: 'Live',
  trends: 'Trends',
  status: 'Status',
  'not-found': 'Not found',
};

/**
 * A page whose code loads when it is visited, never with `/`: the status page (its charts, the
 * metrics parser) and the trends page (its chart and arithmetic).
 */
function lazyView(load: () => Promise<View>, name: string): View {
  return (root, context) => {
    let left = false;
    let leave: (() => void) | void;
    replace(root, h('p', { class: 'loading' }, 'Loading…'));
    load()
      .then((view) => {
        if (!left) leave = view(root, context);
      })
      .catch(() => {
        if (!left) replace(root, h('p', { class: 'error-text' }, `The ${name} could not load; reload to try again.`));
      });
    return () => {
      left = true;
      leave?.();
    };
  };
}

const statusView = lazyView(() => import('./views/status').then((module) => module.statusView), 'status page');
const trendsView = lazyView(() => import('./views/trends').then((module) => module.trendsView), 'trends page');

function viewFor(route: Route): View {
  switch (route.page) {
    case 'allocate':
      return allocateView;
    case 'result':
      return resultView(route.id);
    case 'history':
      return historyView;
    case 'live':
      return liveView;
    case 'trends':
      return trendsView;
    case 'status':
      return statusView;
    case 'not-found':
      return notFoundView;
  }
}

function start(): void {
  const main = document.getElementById('main');
  const consentRoot = document.getElementById('consent-root');
  if (!main || !consentRoot) return;
  // With the status page off, its link goes too (styles hide it before this runs).
  if (!features.statusPage) for (const link of document.querySelectorAll('[data-status-link]')) link.remove();
  const voter = new Voter(browserStorage());
  let leave: (() => void) | void;
  let first = true;

  const show = () => {
    leave?.();
    const route = parseRoute(window.location.pathname, features);
    document.title = `${TITLES[route.page]} · Tax Budget Allocator`;
    for (const link of document.querySelectorAll<HTMLAnchorElement>('[data-nav]')) {
      if (link.dataset.nav === route.page) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    main.replaceChildren();
    leave = viewFor(route)(main, context);
    // After a client-side navigation, move focus to the new page, as a full page load
    // would, so keyboard and screen reader users start at the top of the new content (main
    // stays while the page inside it loads; a heading may be replaced).
    if (!first) main.focus();
    first = false;
  };

  const context: AppContext = {
    voter,
    navigate(path) {
      if (path !== window.location.pathname) window.history.pushState(null, '', path);
      window.scrollTo(0, 0);
      show();
    },
  };

  document.addEventListener('click', (event) => {
    if (
      event.defaultPrevented ||
      event.button !== 0 ||
      event.metaKey ||
      event.ctrlKey ||
      event.shiftKey ||
      event.altKey
    )
      return;
    const link = (event.target as Element | null)?.closest?.('a[data-link]');
    if (!(link instanceof HTMLAnchorElement) || link.origin !== window.location.origin) return;
    event.preventDefault();
    context.navigate(link.pathname);
  });
  window.addEventListener('popstate', show);
  const notice = mountConsentBanner(consentRoot, voter);
  document.getElementById('privacy-choice')?.addEventListener('click', () => {
    voter.reconsider();
    notice.reopen();
    document.getElementById('consent-accept')?.focus();
  });

  show();
}

start();
