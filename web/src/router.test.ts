import { describe, expect, it } from 'vitest';
import { featuresOf, parseRoute, resultPath, suggestion } from './router';

describe('parseRoute', () => {
  it.each([
    ['/', { page: 'allocate' }],
    ['/history', { page: 'history' }],
    ['/history/', { page: 'not-found' }],
    ['/History', { page: 'not-found' }],
    ['/live/', { page: 'not-found' }],
    ['/allocate', { page: 'not-found' }],
    ['/live', { page: 'live' }],
    ['/trends', { page: 'trends' }],
    ['/trends/', { page: 'not-found' }],
    ['/status', { page: 'status' }],
    ['/status/', { page: 'not-found' }],
    ['/s/0b6f1c2e-1d7a-4b1e-9f7e-3c1f2a4b5c6d', { page: 'result', id: '0b6f1c2e-1d7a-4b1e-9f7e-3c1f2a4b5c6d' }],
    ['/s/', { page: 'not-found' }],
    ['/s/a/b', { page: 'not-found' }],
    ['/s/%E0%A4%A', { page: 'not-found' }],
    ['/elsewhere', { page: 'not-found' }],
  ])('%s', (path, route) => {
    expect(parseRoute(path)).toEqual(route);
  });

  it('shows /status as not found when the server has the status page off', () => {
    expect(parseRoute('/status', { statusPage: false })).toEqual({ page: 'not-found' });
    expect(parseRoute('/live', { statusPage: false })).toEqual({ page: 'live' });
  });

  it('round-trips result ids', () => {
    expect(parseRoute(resultPath('a b/c'))).toEqual({ page: 'result', id: 'a b/c' });
  });
});

describe('suggestion', () => {
  it.each([
    ['/History', '/history'],
    ['/live/', '/live'],
    ['/allocate', '/'],
    ['/graphiql/', '/graphiql'],
    ['/Status/', '/status'],
    ['/Trends/', '/trends'],
    ['/trend', '/trends'],
  ])('%s → %s', (path, meant) => {
    expect(suggestion(path)?.path).toBe(meant);
  });

  it('suggests nothing for a path that resembles no page', () => {
    expect(suggestion('/nowhere')).toBeNull();
  });
});

describe('featuresOf', () => {
  it('has the status page unless the server says it is off', () => {
    expect(featuresOf({ querySelector: () => null })).toEqual({ statusPage: true });
    const off = {
      querySelector: (selector: string) =>
        selector === 'meta[name="tb-status-page"]' ? { getAttribute: () => 'off' } : null,
    } as unknown as Document;
    expect(featuresOf(off)).toEqual({ statusPage: false });
    expect(suggestion('/status/', { statusPage: false })).toBeNull();
  });
});
