// Allocation arithmetic for the page, in integer hundredths of a percent (100.00 % = 10000):
// the same unit the server validates in, so the page never disagrees with it over a rounding.

/** 100.00 % in hundredths. */
export const WHOLE = 10_000;

export type ParseProblem = 'not-a-number' | 'too-many-decimals' | 'out-of-range';

export type Parsed = { ok: true; hundredths: number } | { ok: false; problem: ParseProblem };

// Up to three integer digits, then an optional point (or comma, as many locales write it) and
// decimals. Parsed from the text, never through a float, so "0.07" is 7 and not 7.000000000000001.
const NUMBER = /^(\d*)(?:[.,](\d*))?$/;

/** Reads what a person typed. An empty field counts as 0. */
export function parsePercentage(text: string): Parsed {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: true, hundredths: 0 };
  const match = NUMBER.exec(trimmed);
  if (!match) {
    return { ok: false, problem: trimmed.startsWith('-') ? 'out-of-range' : 'not-a-number' };
  }
  const [, whole = '', decimals = ''] = match;
  if (whole === '' && decimals === '') return { ok: false, problem: 'not-a-number' };
  if (decimals.length > 2) return { ok: false, problem: 'too-many-decimals' };
  // Leading zeros are harmless; a long run of digits is simply too large.
  const digits = whole.replace(/^0+(?=\d)/, '');
  if (digits.length > 3) return { ok: false, problem: 'out-of-range' };
  const hundredths = Number(digits || '0') * 100 + Number(decimals.padEnd(2, '0'));
  if (hundredths > WHOLE) return { ok: false, problem: 'out-of-range' };
  return { ok: true, hundredths };
}

export function problemMessage(problem: ParseProblem): string {
  switch (problem) {
    case 'not-a-number':
      return 'Enter a number such as 12.5';
    case 'too-many-decimals':
      return 'Use at most two decimals';
    case 'out-of-range':
      return 'Enter a value between 0 and 100';
  }
}

/** "12.50" for 1250; always two decimals, so columns of numbers line up. */
export function formatHundredths(hundredths: number): string {
  const sign = hundredths < 0 ? '-' : '';
  const abs = Math.abs(Math.trunc(hundredths));
  const decimals = String(abs % 100).padStart(2, '0');
  return `${sign}${Math.floor(abs / 100)}.${decimals}`;
}

/** "+2.50", "−1.25", "0.00": a difference reads better with its sign. */
export function formatDifference(hundredths: number): string {
  if (hundredths > 0) return `+${formatHundredths(hundredths)}`;
  if (hundredths < 0) return `\u2212${formatHundredths(-hundredths)}`;
  return formatHundredths(0);
}

export function total(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0);
}

/** What is left to allocate; negative when the values add up to more than 100. */
export function remaining(values: readonly number[]): number {
  return WHOLE - total(values);
}

export function isComplete(values: readonly number[]): boolean {
  return values.length > 0 && values.every((v) => v >= 0 && v <= WHOLE) && total(values) === WHOLE;
}

/**
 * 100 % split over `count` categories in hundredths, adding up to exactly 10000: every
 * category gets the same share and the first few get one hundredth more for the remainder
 * (3 categories: 33.34, 33.33, 33.33).
 */
export function evenSplit(count: number): number[] {
  if (!Number.isInteger(count) || count <= 0) return [];
  const share = Math.floor(WHOLE / count);
  const extra = WHOLE - share * count;
  return Array.from({ length: count }, (_, index) => share + (index < extra ? 1 : 0));
}

/** A percentage the API returned (a Float with at most two decimals) in hundredths. */
export function fromPercentage(percentage: number): number {
  return Math.round(percentage * 100);
}

/** Hundredths as the API's Float: 3334 → 33.34 (JSON prints the shortest form). */
export function toPercentage(hundredths: number): number {
  return hundredths / 100;
}
