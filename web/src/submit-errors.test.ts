import { describe, expect, it } from 'vitest';
import { ApiError, NETWORK_MESSAGE } from './api/graphql';
import { placeProblems, placeSubmitError, sentence } from './submit-errors';

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
      '2': ['Too many decimals.', 'Appears twice.'],
      '3': ['Negative.'],
    });
    expect(placed.form).toEqual(['Adds up to 99.99.', 'No such row.', 'Too long.']);
  });
});

describe('sentence', () => {
  it('capitalises and ends a clause', () => {
    expect(sentence('the percentages add up to 99.99, not 100')).toBe('The percentages add up to 99.99, not 100.');
    expect(sentence('Done!')).toBe('Done!');
    expect(sentence('  ')).toBe('');
  });
});

describe('placeSubmitError', () => {
  it('shows a rate limit beside the button and says the numbers are kept', () => {
    const placed = placeSubmitError(new ApiError('RATE_LIMITED', 'too many submissions; try again in 12 s'), ids);
    expect(placed.form).toEqual(['Too many submissions; try again in 12 s. Your numbers are kept; submit again then.']);
    expect(placed.byCategory.size).toBe(0);
  });

  it('explains a network failure', () => {
    expect(placeSubmitError(new ApiError('NETWORK', NETWORK_MESSAGE), ids).form).toEqual([NETWORK_MESSAGE]);
    expect(placeSubmitError(new TypeError('fetch failed'), ids).form).toEqual([NETWORK_MESSAGE]);
  });

  it('uses the message when bad input names no field', () => {
    expect(placeSubmitError(new ApiError('BAD_USER_INPUT', 'Nope'), ids).form).toEqual(['Nope.']);
  });

  it('explains a forgotten token', () => {
    expect(placeSubmitError(new ApiError('UNAUTHENTICATED', 'unknown'), ids).form[0]).toMatch(/forgotten/);
  });
});
