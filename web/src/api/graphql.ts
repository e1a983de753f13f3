// GraphQL over HTTP with plain fetch: one POST per operation, errors turned into one typed
// `ApiError` whose `code` is the server's `extensions.code` (or NETWORK / HTTP_<status> when
// no GraphQL answer arrived), so pages decide what to show from the code alone.

import type { Operation } from './operations';

export const ENDPOINT = '/graphql';

/** One input problem the server found, e.g. `input.allocations[3].percentage`. */
export interface FieldProblem {
  field: string;
  message: string;
}

export class ApiError extends Error {
  readonly code: string;
  readonly problems: FieldProblem[];
  /** When the server says how long to wait (`extensions.retryAfterSeconds`), in seconds. */
  readonly retryAfterSeconds: number | null;

  constructor(code: string, message: string, problems: FieldProblem[] = [], retryAfterSeconds: number | null = null) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.problems = problems;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

interface GraphQLErrorBody {
  message?: unknown;
  extensions?: { code?: unknown; field?: unknown; problems?: unknown; retryAfterSeconds?: unknown };
}

interface GraphQLResponseBody<T> {
  data?: T | null;
  errors?: GraphQLErrorBody[];
}

export const NETWORK_MESSAGE = 'Could not reach the server. Check your connection and try again; nothing was lost.';

function problemsOf(error: GraphQLErrorBody, message: string): FieldProblem[] {
  const raw = error.extensions?.problems;
  if (Array.isArray(raw)) {
    return raw.flatMap((entry: unknown) => {
      if (typeof entry !== 'object' || entry === null) return [];
      const { field, message: text } = entry as { field?: unknown; message?: unknown };
      return typeof field === 'string' && typeof text === 'string' ? [{ field, message: text }] : [];
    });
  }
  const field = error.extensions?.field;
  return typeof field === 'string' ? [{ field, message }] : [];
}

/** The first GraphQL error of a response as an `ApiError`. */
export function errorFromGraphQL(error: GraphQLErrorBody): ApiError {
  const message = typeof error.message === 'string' ? error.message : 'The request failed.';
  const code = typeof error.extensions?.code === 'string' ? error.extensions.code : 'INTERNAL';
  const retry = error.extensions?.retryAfterSeconds;
  const retryAfter = typeof retry === 'number' && Number.isFinite(retry) && retry >= 0 ? Math.ceil(retry) : null;
  return new ApiError(code, message, problemsOf(error, message), retryAfter);
}

/** What a response that carries no GraphQL answer means to a person. */
export function errorFromStatus(status: number): ApiError {
  if (status === 429) {
    return new ApiError('RATE_LIMITED', 'Too many requests right now. Wait a moment and try again.');
  }
  if (status >= 500) {
    return new ApiError(`HTTP_${status}`, 'The server had a problem. Try again in a moment.');
  }
  return new ApiError(`HTTP_${status}`, `The server refused the request (HTTP ${status}).`);
}

/** Reads a response into data, or throws the `ApiError` it stands for. */
export function readResponse<T>(status: number, body: unknown): T {
  const parsed = (typeof body === 'object' && body !== null ? body : {}) as GraphQLResponseBody<T>;
  const first = parsed.errors?.[0];
  if (first) throw errorFromGraphQL(first);
  if (parsed.data === undefined || parsed.data === null) throw errorFromStatus(status);
  return parsed.data;
}

export interface RequestOptions {
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string | null;
  signal?: AbortSignal;
}

/** Sends one of the app's operations (see operations.ts) with its variables. */
export async function request<TData, TVariables>(
  query: Operation<TData, TVariables>,
  variables: NoInfer<TVariables>,
  options: RequestOptions = {},
): Promise<TData> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/graphql-response+json, application/json',
  };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let response: Response;
  try {
    response = await fetch(ENDPOINT, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error;
    throw new ApiError('NETWORK', NETWORK_MESSAGE);
  }
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    throw errorFromStatus(response.status);
  }
  return readResponse<TData>(response.status, body);
}
