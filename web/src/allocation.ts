// Allocation arithmetic for the page, in integer hundredths of a percent (100.00 % = 10000):
// the same unit the server validates in, so the page never disagrees with it over a rounding.

/** 100.00 % in hundredths. */
export const WHOLE = 10_000;

export type ParseProblem = 'not-a-number' | 'too-many-decimals' | 'out-of-range';

export type Parsed = { ok: true; hundredths: number } | { ok: false; problem: ParseProblem };

// Up to three integer digits, then an optional point (or comma, as many locales write it) and
// decimals. Parsed from the text, never through a float, so "0.07" is 7 and not 7.000000000000001.
const NUMBER = /^(\d*)(?:[.,](\d*))?$/;
/** A trailing percent sign, as people write percentages ("5%", "12.5 %"). */
const PERCENT_SIGN = /\s*%$/;

/** Reads what a person typed. An empty field counts as 0. */
export function parsePercentage(text: string): Parsed {
  const trimmed = text.trim().replace(PERCENT_SIGN, '');
  if (trimmed === '' && text.includes('%')) return { ok: false, problem: 'not-a-number' };
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

/**
 * Spreads what the locked categories leave over the others, evenly and exactly: the unlocked
 * ones share `WHOLE − locked total` in hundredths, the first few getting one more for the
 * remainder, as in `evenSplit`. `null` when nothing is unlocked or the locked ones already
 * exceed 100 %.
 */
export function spreadRest(values: readonly number[], locked: readonly boolean[]): number[] | null {
  const lockedTotal = total(values.filter((_, index) => locked[index]));
  const open = values.length - locked.filter((isLocked, index) => isLocked && index < values.length).length;
  const rest = WHOLE - lockedTotal;
  if (open <= 0 || rest < 0) return null;
  const share = Math.floor(rest / open);
  let extra = rest - share * open;
  return values.map((value, index) => {
    if (locked[index]) return value;
    const given = share + (extra > 0 ? 1 : 0);
    if (extra > 0) extra -= 1;
    return given;
  });
}

/** A named share in hundredths. */
export interface NamedShare {
  name: string;
  hundredths: number;
}

/** "A", "A and B", "A, B and C". */
export function listNames(names: readonly string[]): string {
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/**
 * The largest shares of a split in words, naming ties as ties: "Healthcare 25.00 %, Education
 * and Science tied at 15.00 %", or "Even split: 10 categories at 10.00 % each". Categories tied
 * with the last one named are all named (or counted, past three), never cut arbitrarily.
 */
export function describeLargest(shares: readonly NamedShare[]): string {
  const given = shares.filter((share) => share.hundredths > 0);
  if (given.length === 0) return 'Nothing allocated';
  const groups: NamedShare[][] = [];
  for (const share of [...given].sort((a, b) => b.hundredths - a.hundredths)) {
    const last = groups[groups.length - 1];
    if (last && last[0]?.hundredths === share.hundredths) last.push(share);
    else groups.push([share]);
  }
  const [first] = groups;
  if (groups.length === 1 && first && first.length > 1) {
    return `Even split: ${first.length} categories at ${formatHundredths(first[0]?.hundredths ?? 0)} % each`;
  }
  const parts: string[] = [];
  let named = 0;
  for (const group of groups) {
    if (named >= 3) break;
    const value = `${formatHundredths(group[0]?.hundredths ?? 0)} %`;
    if (group.length === 1) parts.push(`${group[0]?.name} ${value}`);
    else if (group.length <= 3) parts.push(`${listNames(group.map((share) => share.name))} tied at ${value}`);
    else parts.push(`${group.length} categories tied at ${value}`);
    named += group.length;
  }
  return `Largest: ${parts.join(', ')}`;
}

/** One category of a result beside the national average, in hundredths. */
export interface Compared {
  name: string;
  mine: number;
  average: number;
}

/**
 * The result's headline: the categories that differ most from the national average, above and
 * below ("You gave Defense 5.00 points less than the average and Healthcare 3.00 points more").
 * Ties are named together; a split equal to the average says so.
 */
export function headline(rows: readonly Compared[]): string {
  const differences = rows.map((row) => ({ name: row.name, difference: row.mine - row.average }));
  const most = Math.max(0, ...differences.map((d) => d.difference));
  const least = Math.min(0, ...differences.map((d) => d.difference));
  if (most === 0 && least === 0) return 'Your split matches the national average exactly.';
  const names = (value: number) => listNames(differences.filter((d) => d.difference === value).map((d) => d.name));
  const points = (value: number) =>
    `${formatHundredths(Math.abs(value))} ${Math.abs(value) === 100 ? 'point' : 'points'}`;
  const below = least < 0 ? `${names(least)} ${points(least)} less than the average` : '';
  const above = most > 0 ? `${names(most)} ${points(most)} more` : '';
  if (below && above) return `You gave ${below}, and ${above}.`;
  if (below) return `You gave ${below}.`;
  return `You gave ${above} than the average.`;
}
