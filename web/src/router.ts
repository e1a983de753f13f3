// Client-side routes. The server answers these same paths with index.html, so a deep link or
// a reload lands on the right page.

export type Route =
  | { page: 'allocate' }
  | { page: 'result'; id: string }
  | { page: 'history' }
  | { page: 'live' }
  | { page: 'trends' }
  | { page: 'status' }
  | { page: 'not-found' };

/** What the server says about this app: whether `/status` is one of its pages. */
export interface Features {
  statusPage: boolean;
}

const ALL: Features = { statusPage: true };

/** The server puts `<meta name="tb-status-page" content="off">` in the page when `/status` is off. */
export function featuresOf(document: Pick<Document, 'querySelector'>): Features {
  const flag = document.querySelector('meta[name="tb-status-page"]')?.getAttribute('content');
  return { statusPage: flag !== 'off' };
}

// Exact paths only, as the server matches them: `/live/` or `/History` is the server's 404 (it
// serves this page with status 404), so the app shows its not-found view there too. So is
// `/status` when the server has the status page off.
export function parseRoute(pathname: string, features: Features = ALL): Route {
  const path = pathname;
  if (path === '/' || path === '') return { page: 'allocate' };
  if (path === '/history') return { page: 'history' };
  if (path === '/live') return { page: 'live' };
  if (path === '/trends') return { page: 'trends' };
  if (path === '/status' && features.statusPage) return { page: 'status' };
  const result = /^\/s\/([^/]+)$/.exec(path);
  if (result?.[1]) {
    try {
      return { page: 'result', id: decodeURIComponent(result[1]) };
    } catch {
      return { page: 'not-found' };
    }
  }
  return { page: 'not-found' };
}

export function resultPath(id: string): string {
  return `/s/${encodeURIComponent(id)}`;
}

/** Pages a mistyped address most likely meant, by lower-cased path without trailing slashes. */
const NEAR: Record<string, { path: string; name: string; app: boolean }> = {
  '': { path: '/', name: 'Allocate', app: true },
  '/allocate': { path: '/', name: 'Allocate', app: true },
  '/history': { path: '/history', name: 'History', app: true },
  '/live': { path: '/live', name: 'Live', app: true },
  '/trends': { path: '/trends', name: 'Trends', app: true },
  '/trend': { path: '/trends', name: 'Trends', app: true },
  '/status': { path: '/status', name: 'Service status', app: true },
  '/graphiql': { path: '/graphiql', name: 'GraphiQL', app: false },
};

/** The page an unknown path probably meant (`/History`, `/live/`, `/allocate`), if any. */
export function suggestion(
  pathname: string,
  features: Features = ALL,
): { path: string; name: string; app: boolean } | null {
  const key = pathname.toLowerCase().replace(/\/+$/, '');
  if (key === '/status' && !features.statusPage) return null;
  return NEAR[key] ?? null;
}
