// The allocate page, phone first: one row per category (name, a disclosure for its
// description, a slider in its colour, a number field, a lock), a compact total stuck to the
// bottom of the screen, a doughnut preview, and submit only at exactly 100.00. The field and
// the slider always show the same value, or the field shows its error and the slider the 0 the
// total counts for it.

import {
  WHOLE,
  formatHundredths,
  isComplete,
  parsePercentage,
  problemMessage,
  remaining,
  spreadRest,
  toPercentage,
  total,
} from '../allocation';
import { ApiError, request } from '../api/graphql';
import { CATEGORIES, type Category, SUBMIT } from '../api/operations';
import { SplitPreview } from '../charts';
import { h, replace } from '../dom';
import { resultPath } from '../router';
import { placeSubmitError } from '../submit-errors';
import type { View } from './view';

/** What the visitor typed, per category id: kept while they move between pages. */
const draft = new Map<string, string>();

/** Categories the visitor locked, by id: kept with the draft. */
const lockedDraft = new Set<string>();

const INFO_ICON =
  '<svg viewBox="0 0 20 20" aria-hidden="true" focusable="false"><circle cx="10" cy="10" r="8" fill="none" stroke="currentColor" stroke-width="1.6"/><path d="M10 9v5" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/><circle cx="10" cy="6.2" r="1.1" fill="currentColor"/></svg>';
const LOCK_ICON =
  '<svg viewBox="0 0 20 20" aria-hidden="true" focusable="false"><rect x="4" y="9" width="12" height="8" rx="2" fill="none" stroke="currentColor" stroke-width="1.6"/><path d="M7 9V6.5a3 3 0 0 1 6 0V9" fill="none" stroke="currentColor" stroke-width="1.6"/></svg>';

/** An icon button: a fixed icon from this file (the only parsed markup) and a hidden name. */
function iconButton(icon: string, name: string, attributes: Record<string, string>): HTMLButtonElement {
  const button = h('button', { type: 'button', class: 'icon-button', ...attributes });
  button.innerHTML = icon;
  button.append(h('span', { class: 'visually-hidden' }, name));
  return button;
}

/** The info icon inline in text, for the eye only. */
function infoGlyph(): HTMLElement {
  const glyph = h('span', { class: 'inline-icon', 'aria-hidden': 'true' });
  glyph.innerHTML = INFO_ICON;
  return glyph;
}

interface Row {
  category: Category;
  slider: HTMLInputElement;
  field: HTMLInputElement;
  error: HTMLElement;
  info: HTMLButtonElement;
  description: HTMLElement;
  lock: HTMLButtonElement;
  locked: boolean;
  /** Hundredths, or null while the field holds something that is not a percentage. */
  value: number | null;
  /** Set when the field's text is not a percentage; cleared on the next valid edit. */
  inputProblem: string | null;
  serverProblems: string[];
}

function newIdempotencyKey(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export const allocateView: View = (root, { voter, navigate }) => {
  const controller = new AbortController();
  let preview: SplitPreview | null = null;
  const cleanups: (() => void)[] = [];

  const status = h('p', { class: 'loading', role: 'status' }, 'Loading the budget categories…');
  replace(root, h('h1', {}, 'Split your taxes'), status);

  const load = async () => {
    try {
      const { categories } = await request(CATEGORIES, {}, { signal: controller.signal });
      preview = render(categories);
    } catch (error) {
      if (controller.signal.aborted) return;
      const retry = h('button', { type: 'button', class: 'button' }, 'Try again');
      retry.addEventListener('click', () => {
        replace(status, 'Loading the budget categories…');
        void load();
      });
      const message = error instanceof Error ? error.message : String(error);
      replace(status, h('span', { class: 'error-text' }, `The categories could not be loaded: ${message}`), ' ', retry);
    }
  };

  const render = (categories: Category[]): SplitPreview => {
    const rows: Row[] = categories.map((category) => {
      const slug = category.slug;
      const text = draft.get(category.id) ?? '0';
      const parsed = parsePercentage(text);
      const field = h('input', {
        id: `pct-${slug}`,
        name: slug,
        type: 'text',
        inputmode: 'decimal',
        autocomplete: 'off',
        spellcheck: 'false',
        value: text,
        class: 'pct-field',
        'aria-describedby': `desc-${slug} err-${slug}`,
      });
      const slider = h('input', {
        id: `range-${slug}`,
        type: 'range',
        class: 'slider',
        min: 0,
        max: 100,
        step: 0.01,
        value: parsed.ok ? formatHundredths(parsed.hundredths) : '0',
        'aria-describedby': `desc-${slug} err-${slug}`,
      });
      const locked = lockedDraft.has(category.id);
      return {
        category,
        slider,
        field,
        error: h('p', { id: `err-${slug}`, class: 'field-error', hidden: true }),
        info: iconButton(INFO_ICON, `About ${category.name}`, {
          id: `info-${slug}`,
          class: 'icon-button info-button',
          'aria-expanded': 'false',
          'aria-controls': `desc-${slug}`,
        }),
        description: h('p', { id: `desc-${slug}`, class: 'description', hidden: true }, category.description),
        lock: iconButton(LOCK_ICON, `Lock ${category.name}`, {
          id: `lock-${slug}`,
          class: 'icon-button lock-button',
          'aria-pressed': String(locked),
        }),
        locked,
        value: parsed.ok ? parsed.hundredths : null,
        inputProblem: parsed.ok ? null : problemMessage(parsed.problem),
        serverProblems: [],
      };
    });

    const totalText = h('output', { id: 'total', for: rows.map((r) => r.field.id).join(' ') });
    const remainingText = h('output', { id: 'remaining' });
    const meter = h('div', { class: 'meter', 'aria-hidden': 'true' }, h('div', { class: 'meter-fill' }));
    const submit = h(
      'button',
      { type: 'submit', class: 'button primary', id: 'submit', 'aria-describedby': 'submit-hint form-errors' },
      'Submit',
    );
    const hint = h('p', { id: 'submit-hint', class: 'hint' });
    const formErrors = h('div', { id: 'form-errors', class: 'form-errors', role: 'alert' });
    const evenly = h('button', { type: 'button', class: 'button small', id: 'split-evenly' }, 'Split evenly');
    const reset = h('button', { type: 'button', class: 'button small', id: 'reset' }, 'Reset');
    const canvas = h('canvas', {
      id: 'preview-chart',
      role: 'img',
      'aria-label': 'Doughnut chart of your split as you set it',
    });
    const centre = h('strong', { id: 'preview-total' }, '0 %');

    const form = h(
      'form',
      { class: 'allocate', novalidate: true, 'aria-labelledby': 'allocate-title' },
      h(
        'fieldset',
        { class: 'categories' },
        h(
          'div',
          { class: 'toolbar' },
          h('legend', { id: 'allocate-title' }, 'Percent per category, two decimals at most'),
          h('div', { class: 'actions' }, evenly, reset),
        ),
        h(
          'div',
          { class: 'rows' },
          ...rows.map((row) => {
            const { category } = row;
            const slug = category.slug;
            return h(
              'div',
              {
                class: `category-row${row.locked ? ' locked' : ''}`,
                'data-category': slug,
                style: `--swatch: ${category.color}`,
              },
              h('span', { class: 'swatch', 'aria-hidden': 'true' }),
              h(
                'div',
                { class: 'name-cell' },
                h('label', { for: row.field.id, class: 'category-name' }, category.name),
                row.info,
              ),
              h('label', { for: row.slider.id, class: 'visually-hidden' }, `${category.name} slider`),
              row.slider,
              h('span', { class: 'pct' }, row.field, h('span', { 'aria-hidden': 'true' }, '%')),
              row.lock,
              row.description,
              row.error,
            );
          }),
        ),
      ),
      h(
        'div',
        { class: 'summary', id: 'summary' },
        h(
          'p',
          { class: 'totals', 'aria-live': 'polite' },
          h('span', { class: 'visually-hidden' }, 'Total '),
          totalText,
          remainingText,
        ),
        meter,
        submit,
        hint,
        formErrors,
      ),
    );
    const previewFigure = h(
      'figure',
      { class: 'preview card' },
      h(
        'div',
        { class: 'chart-box' },
        canvas,
        h('div', { class: 'doughnut-centre', 'aria-hidden': 'true' }, centre, 'allocated'),
      ),
      h('figcaption', {}, 'Preview of your split'),
    );
    replace(
      root,
      h('h1', {}, 'Split your taxes'),
      h(
        'p',
        { class: 'lede' },
        'Give each category a share of your taxes, 100 % in all. ',
        h(
          'span',
          { class: 'lede-more' },
          'Open a category’s ',
          infoGlyph(),
          ' to read what it pays for; lock some and spread the rest.',
        ),
      ),
      h('div', { class: 'columns allocate-layout' }, form, previewFigure),
    );
    const chart = new SplitPreview(canvas);

    // One key per intended submission: a retry after a network failure cannot count twice.
    // A new key as soon as the numbers change, since that is a different submission.
    let idempotencyKey = newIdempotencyKey();
    let submitting = false;
    let formProblems: string[] = [];
    /** While the server's rate limit holds: when it ends (ms since the epoch, this clock). */
    let blockedUntil: number | null = null;
    let countdownTimer: ReturnType<typeof setInterval> | null = null;
    const secondsLeft = () => (blockedUntil === null ? 0 : Math.max(0, Math.ceil((blockedUntil - Date.now()) / 1000)));

    const showRowError = (row: Row) => {
      const messages = [row.inputProblem, ...row.serverProblems].filter((m): m is string => Boolean(m));
      replace(row.error, messages.join(' '));
      row.error.hidden = messages.length === 0;
      row.field.setAttribute('aria-invalid', String(messages.length > 0));
      row.field.closest('.category-row')?.classList.toggle('invalid', messages.length > 0);
    };

    const refresh = () => {
      const values = rows.map((row) => row.value ?? 0);
      const sum = total(values);
      const left = remaining(values);
      const allValid = rows.every((row) => row.value !== null);
      totalText.value = `${formatHundredths(sum)} %`;
      remainingText.value =
        left > 0
          ? `${formatHundredths(left)} % left to allocate`
          : left < 0
            ? `${formatHundredths(-left)} % too much`
            : 'all allocated';
      remainingText.classList.toggle('over', left < 0);
      remainingText.classList.toggle('done', left === 0);
      replace(centre, `${formatHundredths(Math.min(sum, WHOLE)).replace(/\.00$/, '')} %`);
      const fill = meter.firstElementChild as HTMLElement;
      fill.style.width = `${Math.min(100, sum / 100)}%`;
      meter.classList.toggle('complete', sum === WHOLE);
      meter.classList.toggle('over', sum > WHOLE);

      const ready = allValid && isComplete(values);
      const wait = secondsLeft();
      submit.disabled = !ready || submitting || wait > 0;
      replace(
        hint,
        submitting
          ? 'Submitting…'
          : wait > 0
            ? h(
                'span',
                {},
                'You can submit again in ',
                h('span', { id: 'countdown', class: 'countdown', role: 'timer', 'data-seconds': wait }, `${wait} s`),
                '.',
              )
            : !allValid
              ? 'Fix the highlighted fields to submit.'
              : left > 0
                ? `Allocate ${formatHundredths(left)} % more to submit.`
                : left < 0
                  ? `Take away ${formatHundredths(-left)} % to submit.`
                  : 'Ready: your split adds up to 100.00 %.',
      );
      // The total already says how much is left; the hint shows when it says something else.
      hint.classList.toggle('quiet', !submitting && wait === 0 && allValid && left !== 0);
      const anyLocked = rows.some((row) => row.locked);
      replace(evenly, anyLocked ? 'Spread the rest' : 'Split evenly');
      replace(formErrors, ...formProblems.map((message) => h('p', { class: 'error-text' }, message)));

      chart.update(
        rows.map((row) => ({
          label: row.category.name,
          color: row.category.color,
          value: toPercentage(row.value ?? 0),
        })),
        toPercentage(Math.max(0, left)),
      );
    };

    const edited = () => {
      idempotencyKey = newIdempotencyKey();
      formProblems = [];
      for (const row of rows) draft.set(row.category.id, row.field.value);
      refresh();
    };

    /** The slider shows what the total counts for the row: its value, or 0 while in error. */
    const showSlider = (row: Row) => {
      const counted = row.value ?? 0;
      row.slider.value = formatHundredths(counted);
      row.slider.style.setProperty('--fill', `${counted / 100}%`);
      row.slider.setAttribute('aria-invalid', String(row.value === null));
    };

    const setValue = (row: Row, hundredths: number) => {
      row.value = hundredths;
      row.inputProblem = null;
      row.serverProblems = [];
      row.field.value = formatHundredths(hundredths);
      showSlider(row);
      showRowError(row);
    };

    const closeDescriptions = (except?: Row) => {
      for (const row of rows) {
        if (row === except) continue;
        row.description.hidden = true;
        row.info.setAttribute('aria-expanded', 'false');
      }
    };
    const onDocumentClick = (event: MouseEvent) => {
      const target = event.target as Node | null;
      // A tap anywhere but an info button closes an open description, a tap on it too: it
      // covers the row below, which must be one tap away.
      if (!rows.some((row) => row.info.contains(target))) closeDescriptions();
    };
    const onKey = (event: KeyboardEvent) => {
      if (event.key !== 'Escape') return;
      const open = rows.find((row) => !row.description.hidden);
      if (!open) return;
      closeDescriptions();
      open.info.focus();
    };
    document.addEventListener('click', onDocumentClick);
    document.addEventListener('keydown', onKey);
    cleanups.push(() => {
      document.removeEventListener('click', onDocumentClick);
      document.removeEventListener('keydown', onKey);
    });

    for (const row of rows) {
      showRowError(row);
      showSlider(row);
      row.info.addEventListener('click', () => {
        const opening = row.description.hidden;
        closeDescriptions(row);
        row.description.hidden = !opening;
        row.info.setAttribute('aria-expanded', String(opening));
      });
      row.lock.addEventListener('click', () => {
        row.locked = !row.locked;
        row.lock.setAttribute('aria-pressed', String(row.locked));
        row.field.closest('.category-row')?.classList.toggle('locked', row.locked);
        if (row.locked) lockedDraft.add(row.category.id);
        else lockedDraft.delete(row.category.id);
        refresh();
      });
      row.field.addEventListener('input', () => {
        const parsed = parsePercentage(row.field.value);
        row.serverProblems = [];
        if (parsed.ok) {
          row.value = parsed.hundredths;
          row.inputProblem = null;
        } else {
          row.value = null;
          row.inputProblem = problemMessage(parsed.problem);
        }
        showSlider(row);
        showRowError(row);
        edited();
      });
      // Typing replaces the whole value, as in a spreadsheet cell; arrow keys still edit it.
      row.field.addEventListener('focus', () => row.field.select());
      // Tidy the text once the visitor moves on ("7" → "7.00"), but never a value in error.
      row.field.addEventListener('change', () => {
        if (row.value !== null) row.field.value = formatHundredths(row.value);
        draft.set(row.category.id, row.field.value);
      });
      row.slider.addEventListener('input', () => {
        const parsed = parsePercentage(row.slider.value);
        if (parsed.ok) setValue(row, parsed.hundredths);
        edited();
      });
    }

    // Split evenly, or with locks, spread what the locked rows leave over the others.
    evenly.addEventListener('click', () => {
      const spread = spreadRest(
        rows.map((row) => row.value ?? 0),
        rows.map((row) => row.locked),
      );
      if (spread === null) {
        formProblems = [
          rows.every((row) => row.locked)
            ? 'Every category is locked: unlock one to spread the rest over it.'
            : 'The locked categories already add up to more than 100 %.',
        ];
        refresh();
        return;
      }
      spread.forEach((value, index) => {
        const row = rows[index];
        if (row && !row.locked) setValue(row, value);
      });
      edited();
    });
    reset.addEventListener('click', () => {
      for (const row of rows) if (!row.locked) setValue(row, 0);
      edited();
    });

    const startCountdown = (seconds: number) => {
      blockedUntil = Date.now() + seconds * 1000;
      if (countdownTimer !== null) clearInterval(countdownTimer);
      countdownTimer = setInterval(() => {
        if (secondsLeft() > 0) {
          refresh();
          return;
        }
        if (countdownTimer !== null) clearInterval(countdownTimer);
        countdownTimer = null;
        blockedUntil = null;
        formProblems = [];
        refresh();
      }, 250);
    };
    cleanups.push(() => {
      if (countdownTimer !== null) clearInterval(countdownTimer);
    });

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (submit.disabled) return;
      void send();
    });

    const send = async () => {
      submitting = true;
      formProblems = [];
      refresh();
      const ids = rows.map((row) => row.category.id);
      try {
        const data = await request(
          SUBMIT,
          {
            input: {
              allocations: rows.map((row) => ({
                categoryId: row.category.id,
                percentage: toPercentage(row.value ?? 0),
              })),
              idempotencyKey,
            },
          },
          { token: voter.token(), signal: controller.signal },
        );
        const { submission, voterToken } = data.submitAllocation;
        voter.remember(voterToken);
        draft.clear();
        navigate(resultPath(submission.id));
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof ApiError && error.code === 'UNAUTHENTICATED') voter.forget();
        const placed = placeSubmitError(error, ids);
        for (const row of rows) {
          row.serverProblems = placed.byCategory.get(row.category.id) ?? [];
          showRowError(row);
        }
        formProblems = placed.form;
        submitting = false;
        if (error instanceof ApiError && error.code === 'RATE_LIMITED' && error.retryAfterSeconds !== null) {
          formProblems = ['Too many submissions from your address for now. Your numbers are kept.'];
          startCountdown(error.retryAfterSeconds);
        }
        refresh();
        const firstInvalid = rows.find((row) => row.serverProblems.length > 0);
        firstInvalid?.field.focus();
      }
    };

    refresh();
    return chart;
  };

  void load();
  return () => {
    controller.abort();
    for (const cleanup of cleanups) cleanup();
    preview?.destroy();
  };
};
