import { describe, expect, it } from 'vitest';
import { parseRoute, resultPath, suggestion } from './router';

describe('parseRoute', () => {
  it.each([
    ['/', { page: 'allocate' }],
    ['/history', { page: 'history' }],
    ['/history/', { page: 'not-found' }],
    ['/History', { page: 'not-found' }],
    ['/live/', { page: 'not-found' }],
    ['/allocate', { page: 'not-found' }],
    ['/live', { page: 'live' }],
    ['/s/0b6f1c2e-1d7a-4b1e-9f7e-3c1f2a4b5c6d', { page: 'result', id: '0b6f1c2e-1d7a-4b1e-9f7e-3c1f2a4b5c6d' }],
    ['/s/', { page: 'not-found' }],
    ['/s/a/b', { page: 'not-found' }],
    ['/s/%E0%A4%A', { page: 'not-found' }],
    ['/elsewhere', { page: 'not-found' }],
  ])('%s', (path, route) => {
    expect(parseRoute(path)).toEqual(route);
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
  ])('%s → %s', (path, meant) => {
    expect(suggestion(path)?.path).toBe(meant);
  });

  it('suggests nothing for a path that resembles no page', () => {
    expect(suggestion('/nowhere')).toBeNull();
  });
});
