import { describe, expect, it } from 'vitest';
import { ApiError, NETWORK_MESSAGE } from './api/graphql';
import { placeProblems, placeSubmitError } from './submit-errors';

const ids = ['1', '2', '3'];

describe('placeProblems', () => {
  it('puts entry problems on their category and list problems on the form', () => {
    const placed = placeProblems(
      [
        { field: 'input.allocations[1].percentage', message: 'too many decimals' },
        { field: 'input.allocations[1].categoryId', message: 'appears twice' },
        { field: 'input.allocations[2].percentage', message: 'negative' },
        { field: 'input.allocations', message: 'adds up to 99.99' },
        { field: 'input.allocations[9].percentage', message: 'no such row' },
        { field: 'input.idempotencyKey', message: 'too long' },
      ],
      ids,
    );
    expect(Object.fromEntries(placed.byCategory)).toEqual({
      '2': ['too many decimals', 'appears twice'],
      '3': ['negative'],
    });
    expect(placed.form).toEqual(['adds up to 99.99', 'no such row', 'too long']);
  });
});

describe('placeSubmitError', () => {
  it('shows a rate limit beside the button and says the numbers are kept', () => {
    const placed = placeSubmitError(new ApiError('RATE_LIMITED', 'Too many submissions'), ids);
    expect(placed.form).toEqual(['Too many submissions. Your numbers are kept; submit again in a moment.']);
    expect(placed.byCategory.size).toBe(0);
  });

  it('explains a network failure', () => {
    expect(placeSubmitError(new ApiError('NETWORK', NETWORK_MESSAGE), ids).form).toEqual([NETWORK_MESSAGE]);
    expect(placeSubmitError(new TypeError('fetch failed'), ids).form).toEqual([NETWORK_MESSAGE]);
  });

  it('uses the message when bad input names no field', () => {
    expect(placeSubmitError(new ApiError('BAD_USER_INPUT', 'Nope'), ids).form).toEqual(['Nope']);
  });

  it('explains a forgotten token', () => {
    expect(placeSubmitError(new ApiError('UNAUTHENTICATED', 'unknown'), ids).form[0]).toMatch(/forgotten/);
  });
});
