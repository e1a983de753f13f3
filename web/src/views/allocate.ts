// The allocate page: one slider and one number field per category, kept in sync, a running
// total, a doughnut preview, and submit only at exactly 100.00.

import {
  WHOLE,
  evenSplit,
  formatHundredths,
  isComplete,
  parsePercentage,
  problemMessage,
  remaining,
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

interface Row {
  category: Category;
  slider: HTMLInputElement;
  field: HTMLInputElement;
  error: HTMLElement;
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
        min: 0,
        max: 100,
        step: 0.01,
        value: parsed.ok ? formatHundredths(parsed.hundredths) : '0',
        'aria-describedby': `desc-${slug}`,
      });
      return {
        category,
        slider,
        field,
        error: h('p', { id: `err-${slug}`, class: 'field-error', hidden: true }),
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
      'Submit allocation',
    );
    const hint = h('p', { id: 'submit-hint', class: 'hint' });
    const formErrors = h('div', { id: 'form-errors', class: 'form-errors', role: 'alert' });
    const evenly = h('button', { type: 'button', class: 'button', id: 'split-evenly' }, 'Split evenly');
    const reset = h('button', { type: 'button', class: 'button', id: 'reset' }, 'Reset to 0');
    const canvas = h('canvas', {
      id: 'preview-chart',
      role: 'img',
      'aria-label': 'Doughnut chart of your split as you set it',
    });

    const form = h(
      'form',
      { class: 'allocate', novalidate: true, 'aria-labelledby': 'allocate-title' },
      h(
        'fieldset',
        { class: 'categories' },
        h('legend', { id: 'allocate-title' }, 'Percent of your taxes per category (at most two decimals, 100 in all)'),
        ...rows.map((row) => {
          const { category } = row;
          const slug = category.slug;
          return h(
            'div',
            { class: 'category-row', 'data-category': slug, style: `--swatch: ${category.color}` },
            h('span', { class: 'swatch', 'aria-hidden': 'true' }),
            h('label', { for: row.field.id, class: 'category-name' }, category.name),
            h('label', { for: row.slider.id, class: 'visually-hidden' }, `${category.name} slider`),
            row.slider,
            h('span', { class: 'pct' }, row.field, h('span', { 'aria-hidden': 'true' }, '%')),
            h('p', { id: `desc-${slug}`, class: 'description' }, category.description),
            row.error,
          );
        }),
      ),
      h(
        'div',
        { class: 'summary' },
        h('p', { class: 'totals', 'aria-live': 'polite' }, 'Total ', totalText, ' · ', remainingText),
        meter,
        h('div', { class: 'actions' }, evenly, reset, submit),
        hint,
        formErrors,
      ),
    );
    const previewFigure = h(
      'figure',
      { class: 'preview' },
      h('div', { class: 'chart-box' }, canvas),
      h('figcaption', {}, 'Preview of your split'),
    );
    replace(
      root,
      h('h1', {}, 'Split your taxes'),
      h(
        'p',
        { class: 'lede' },
        'Decide how your taxes would be spent: give each category a share, adding up to exactly 100 %. ',
        'Hover or focus a category to read what it pays for.',
      ),
      h('div', { class: 'columns allocate-layout' }, form, previewFigure),
    );
    const chart = new SplitPreview(canvas);

    // One key per intended submission: a retry after a network failure cannot count twice.
    // A new key as soon as the numbers change, since that is a different submission.
    let idempotencyKey = newIdempotencyKey();
    let submitting = false;
    let formProblems: string[] = [];

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
        left >= 0 ? `${formatHundredths(left)} % left to allocate` : `${formatHundredths(-left)} % too much`;
      remainingText.classList.toggle('over', left < 0);
      const fill = meter.firstElementChild as HTMLElement;
      fill.style.width = `${Math.min(100, sum / 100)}%`;
      meter.classList.toggle('complete', sum === WHOLE);
      meter.classList.toggle('over', sum > WHOLE);

      const ready = allValid && isComplete(values);
      submit.disabled = !ready || submitting;
      replace(
        hint,
        submitting
          ? 'Submitting…'
          : !allValid
            ? 'Fix the highlighted fields to submit.'
            : left > 0
              ? `Allocate ${formatHundredths(left)} % more to submit.`
              : left < 0
                ? `Take away ${formatHundredths(-left)} % to submit.`
                : 'Ready: your split adds up to 100.00 %.',
      );
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

    const setValue = (row: Row, hundredths: number) => {
      row.value = hundredths;
      row.inputProblem = null;
      row.serverProblems = [];
      row.field.value = formatHundredths(hundredths);
      row.slider.value = formatHundredths(hundredths);
      showRowError(row);
    };

    for (const row of rows) {
      showRowError(row);
      row.field.addEventListener('input', () => {
        const parsed = parsePercentage(row.field.value);
        row.serverProblems = [];
        if (parsed.ok) {
          row.value = parsed.hundredths;
          row.inputProblem = null;
          row.slider.value = formatHundredths(parsed.hundredths);
        } else {
          row.value = null;
          row.inputProblem = problemMessage(parsed.problem);
        }
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

    evenly.addEventListener('click', () => {
      evenSplit(rows.length).forEach((value, index) => {
        const row = rows[index];
        if (row) setValue(row, value);
      });
      edited();
    });
    reset.addEventListener('click', () => {
      for (const row of rows) setValue(row, 0);
      edited();
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
    preview?.destroy();
  };
};
