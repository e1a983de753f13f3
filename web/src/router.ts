// Client-side routes. The server answers these same paths with index.html, so a deep link or
// a reload lands on the right page.

export type Route =
  | { page: 'allocate' }
  | { page: 'result'; id: string }
  | { page: 'history' }
  | { page: 'live' }
  | { page: 'not-found' };

export function parseRoute(pathname: string): Route {
  const path = pathname.length > 1 ? pathname.replace(/\/+$/, '') : pathname;
  if (path === '/' || path === '') return { page: 'allocate' };
  if (path === '/history') return { page: 'history' };
  if (path === '/live') return { page: 'live' };
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
