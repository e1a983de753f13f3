import { describe, expect, it } from 'vitest';
import { ApiError, errorFromStatus, readResponse } from './graphql';

function thrown(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error('expected an ApiError');
}

describe('readResponse', () => {
  it('returns data', () => {
    expect(readResponse(200, { data: { ok: 1 } })).toEqual({ ok: 1 });
  });

  it('keeps how long a rate limit says to wait', () => {
    const limited = thrown(() =>
      readResponse(200, {
        data: null,
        errors: [{ message: 'too many', extensions: { code: 'RATE_LIMITED', retryAfterSeconds: 59 } }],
      }),
    );
    expect(limited.code).toBe('RATE_LIMITED');
    expect(limited.retryAfterSeconds).toBe(59);
    const bad = thrown(() =>
      readResponse(200, {
        errors: [{ message: 'x', extensions: { code: 'RATE_LIMITED', retryAfterSeconds: 'soon' } }],
      }),
    );
    expect(bad.retryAfterSeconds).toBeNull();
  });

  it('keeps every input problem with its field', () => {
    const error = thrown(() =>
      readResponse(200, {
        data: null,
        errors: [
          {
            message: 'invalid allocation',
            extensions: {
              code: 'BAD_USER_INPUT',
              field: 'input.allocations[1].percentage',
              problems: [
                { field: 'input.allocations[1].percentage', message: 'too many decimals' },
                { field: 'input.allocations', message: 'the percentages add up to 99.99, not 100' },
              ],
            },
          },
        ],
      }),
    );
    expect(error.code).toBe('BAD_USER_INPUT');
    expect(error.problems.map((p) => p.field)).toEqual(['input.allocations[1].percentage', 'input.allocations']);
  });

  it('falls back to the single field when no problem list is sent', () => {
    const error = thrown(() =>
      readResponse(400, {
        errors: [{ message: 'bad key', extensions: { code: 'BAD_USER_INPUT', field: 'input.idempotencyKey' } }],
      }),
    );
    expect(error.problems).toEqual([{ field: 'input.idempotencyKey', message: 'bad key' }]);
  });

  it('reads rate limits and server failures without a GraphQL body', () => {
    expect(thrown(() => readResponse(429, {})).code).toBe('RATE_LIMITED');
    expect(errorFromStatus(503).code).toBe('HTTP_503');
    expect(thrown(() => readResponse(200, { errors: [{ message: 'x' }] })).code).toBe('INTERNAL');
  });
});
