// Where a failed submission's errors belong on the allocate page: next to the category row
// that caused them, or beside the submit button when they are about the whole form.

import { ApiError, type FieldProblem, NETWORK_MESSAGE } from './api/graphql';

export interface PlacedErrors {
  /** Messages per category id. */
  byCategory: Map<string, string[]>;
  /** Messages about the whole allocation or the request. */
  form: string[];
}

/** Server messages are lower-case clauses ("the percentages add up to 99.99, not 100"). */
export function sentence(message: string): string {
  const trimmed = message.trim();
  if (trimmed === '') return trimmed;
  const capitalised = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capitalised) ? capitalised : `${capitalised}.`;
}

// `input.allocations[3].percentage` → 3: the page sends one entry per category, in the order
// the categories are shown, so the index names the row.
const ENTRY = /^input\.allocations\[(\d+)\]/;

export function placeProblems(problems: FieldProblem[], categoryIdsInOrder: readonly string[]): PlacedErrors {
  const placed: PlacedErrors = { byCategory: new Map(), form: [] };
  for (const problem of problems) {
    const index = ENTRY.exec(problem.field)?.[1];
    const categoryId = index === undefined ? undefined : categoryIdsInOrder[Number(index)];
    const message = sentence(problem.message);
    if (categoryId === undefined) {
      placed.form.push(message);
    } else {
      placed.byCategory.set(categoryId, [...(placed.byCategory.get(categoryId) ?? []), message]);
    }
  }
  return placed;
}

/** Everything a failed submit can show; the page keeps the visitor's numbers in every case. */
export function placeSubmitError(error: unknown, categoryIdsInOrder: readonly string[]): PlacedErrors {
  if (!(error instanceof ApiError)) {
    return { byCategory: new Map(), form: [NETWORK_MESSAGE] };
  }
  switch (error.code) {
    case 'BAD_USER_INPUT': {
      const placed = placeProblems(error.problems, categoryIdsInOrder);
      if (placed.form.length === 0 && placed.byCategory.size === 0) placed.form.push(sentence(error.message));
      return placed;
    }
    case 'RATE_LIMITED':
      return {
        byCategory: new Map(),
        form: [`${sentence(error.message)} Your numbers are kept; submit again then.`],
      };
    case 'UNAUTHENTICATED':
      return {
        byCategory: new Map(),
        form: [
          'This browser’s voter token is no longer recognised, so it was forgotten. Submit again to start a new history.',
        ],
      };
    default:
      return { byCategory: new Map(), form: [sentence(error.message)] };
  }
}
