// The web app against the real server (embedded default) in a real Chromium.

import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { DEADLINE_MS, launchBrowser, POLL, screenshot, Server, SPLIT } from './harness';

const require = createRequire(import.meta.url);

/** The part of axe-core's browser API the accessibility test uses. */
interface AxeRunner {
  run(
    context: Document,
    options: { runOnly: string[] },
  ): Promise<{ violations: { id: string; nodes: { target: string[] }[] }[] }>;
}

let browser: Browser;
let server: Server;

beforeAll(async () => {
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
});

/** Gives the enclosing `describe` a server (and database) of its own. */
function ownServer(): void {
  beforeAll(async () => {
    server = await Server.start();
  });
  afterAll(async () => {
    await server?.dispose();
  });
}

async function newPage(context?: BrowserContext): Promise<Page> {
  const page = await (context ?? (await browser.newContext())).newPage();
  page.setDefaultTimeout(DEADLINE_MS);
  return page;
}

async function openAllocate(page: Page): Promise<void> {
  await page.goto(`${server.url}/`);
  await page.locator('#pct-healthcare').waitFor();
}

async function fill(page: Page, split: Record<string, string>): Promise<void> {
  for (const [slug, value] of Object.entries(split)) {
    await page.locator(`#pct-${slug}`).fill(value);
  }
}

/** The submission count the live page shows once its first snapshot has arrived. */
async function firstTotal(page: Page): Promise<number> {
  const locator = page.locator('#total-submissions');
  await expect.poll(() => locator.getAttribute('data-value'), POLL).toMatch(/^\d+$/);
  return Number(await locator.getAttribute('data-value'));
}

async function cell(page: Page, slug: string, column: 'mine' | 'national' | 'difference'): Promise<string> {
  return (
    (await page.locator(`#result-table tr[data-category="${slug}"] td[data-column="${column}"]`).textContent()) ?? ''
  );
}

describe('allocate → result → history', () => {
  ownServer();
  let context: BrowserContext;
  const submitted: string[] = [];

  beforeAll(async () => {
    context = await browser.newContext();
  });
  afterAll(async () => {
    await context.close();
  });

  it('submits a filled form and shows the numbers beside the national average', async () => {
    const page = await newPage(context);
    await openAllocate(page);
    await page.locator('#consent-accept').click();
    await expect.poll(() => page.locator('#consent-banner').count(), POLL).toBe(0);

    await fill(page, SPLIT);
    await expect.poll(() => page.locator('#total').textContent(), POLL).toBe('100.00 %');
    expect(await page.locator('#submit').isEnabled()).toBe(true);
    await screenshot(page, 'allocate');

    await page.locator('#submit').click();
    await page.waitForURL(/\/s\/[^/]+$/);
    const id = decodeURIComponent(new URL(page.url()).pathname.slice('/s/'.length));
    submitted.push(id);
    await page.locator('#result-table').waitFor();

    for (const [slug, value] of Object.entries(SPLIT)) {
      expect(await cell(page, slug, 'mine')).toBe(`${Number(value).toFixed(2)} %`);
    }
    // The only submission is the national average once the worker has folded it.
    await expect.poll(() => cell(page, 'public-safety', 'national'), POLL).toBe('4.50 %');
    expect(await cell(page, 'healthcare', 'national')).toBe('25.00 %');
    expect(await cell(page, 'healthcare', 'difference')).toBe('0.00');
    expect(await page.locator('#result-table caption').textContent()).toContain('1 submission');
    await screenshot(page, 'result');

    // The URL is shareable: a fresh browser opening it sees the same numbers.
    const stranger = await newPage();
    await stranger.goto(page.url());
    await stranger.locator('#result-table').waitFor();
    expect(await cell(stranger, 'housing', 'mine')).toBe('3.25 %');
    await stranger.context().close();
  });

  it('lists the visitor’s submissions in History, newest first, each linking to its result', async () => {
    const page = await newPage(context);
    await openAllocate(page);
    await page.locator('#split-evenly').click();
    await page.locator('#submit').click();
    await page.waitForURL(/\/s\/[^/]+$/);
    submitted.push(decodeURIComponent(new URL(page.url()).pathname.slice('/s/'.length)));

    await page.getByRole('link', { name: 'History', exact: true }).click();
    await page.locator('#history-list').waitFor();
    const listed = await page
      .locator('#history-list li')
      .evaluateAll((items) => items.map((item) => item.getAttribute('data-submission')));
    expect(listed).toEqual([...submitted].reverse());
    await screenshot(page, 'history');

    await page.locator('#history-list li').last().getByRole('link').click();
    await page.waitForURL(`**/s/${submitted[0]}`);
    await page.locator('#result-table').waitFor();
    expect(await cell(page, 'healthcare', 'mine')).toBe('25.00 %');
  });
});

describe('consent', () => {
  ownServer();

  it('keeps the voter token in the browser only once the visitor accepts', async () => {
    const page = await newPage();
    const storedToken = () => page.evaluate(() => window.localStorage.getItem('tax-budget.voterToken'));
    await openAllocate(page);
    await page.locator('#split-evenly').click();
    await page.locator('#submit').click();
    await page.waitForURL(/\/s\/[^/]+$/);
    const id = decodeURIComponent(new URL(page.url()).pathname.slice('/s/'.length));
    expect(await storedToken()).toBeNull();

    await page.locator('#consent-accept').click();
    expect(await storedToken()).toMatch(/^tbv2_[0-9a-f]{96}$/);
    await page.reload();
    await page.goto(`${server.url}/history`);
    await page.locator('#history-list').waitFor();
    expect(
      await page.locator('#history-list li').evaluateAll((items) => items.map((i) => i.dataset.submission)),
    ).toEqual([id]);

    // Asked again and declined: the token is gone and History has nothing to show.
    await page.locator('#privacy-choice').click();
    await page.locator('#consent-decline').click();
    expect(await storedToken()).toBeNull();
    await expect.poll(() => page.locator('main').textContent(), POLL).toContain('chose not to keep a voter token');
    await page.context().close();
  });
});

describe('allocate form', () => {
  ownServer();
  it('enables submit only at exactly 100.00', async () => {
    const page = await newPage();
    await openAllocate(page);
    await page.locator('#split-evenly').click();
    await expect.poll(() => page.locator('#total').textContent(), POLL).toBe('100.00 %');
    expect(await page.locator('#submit').isEnabled()).toBe(true);

    await page.locator('#pct-other').fill('9.99');
    await expect.poll(() => page.locator('#total').textContent(), POLL).toBe('99.99 %');
    expect(await page.locator('#submit').isDisabled()).toBe(true);
    expect(await page.locator('#remaining').textContent()).toBe('0.01 % left to allocate');
    expect(await page.locator('#submit-hint').textContent()).toBe('Allocate 0.01 % more to submit.');

    await page.locator('#pct-other').fill('10.01');
    await expect.poll(() => page.locator('#total').textContent(), POLL).toBe('100.01 %');
    expect(await page.locator('#submit').isDisabled()).toBe(true);

    await page.locator('#pct-other').fill('10.001');
    expect(await page.locator('#err-other').textContent()).toBe('Use at most two decimals');
    expect(await page.locator('#pct-other').getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#submit').isDisabled()).toBe(true);

    await page.locator('#pct-other').fill('10');
    await expect.poll(() => page.locator('#submit').isEnabled(), POLL).toBe(true);
    expect(await page.locator('#err-other').isHidden()).toBe(true);

    await page.locator('#reset').click();
    await expect.poll(() => page.locator('#total').textContent(), POLL).toBe('0.00 %');
    expect(await page.locator('#pct-healthcare').inputValue()).toBe('0.00');
    expect(await page.locator('#submit').isDisabled()).toBe(true);
    await page.context().close();
  });

  it('keeps slider and number field in sync', async () => {
    const page = await newPage();
    await openAllocate(page);
    await page.locator('#pct-education').fill('42.5');
    expect(await page.locator('#range-education').inputValue()).toBe('42.5');
    await page.locator('#range-science').fill('12.25');
    expect(await page.locator('#pct-science').inputValue()).toBe('12.25');
    await expect.poll(() => page.locator('#total').textContent(), POLL).toBe('54.75 %');
    await page.context().close();
  });

  it('labels every control and works with the keyboard alone', async () => {
    const page = await newPage();
    await openAllocate(page);
    const unlabelled = await page.locator('input, button, select, textarea').evaluateAll((controls) =>
      controls
        .filter((control) => {
          const labels = (control as HTMLInputElement).labels;
          const named =
            (labels && labels.length > 0) || control.getAttribute('aria-label') || control.textContent?.trim();
          return !named;
        })
        .map((control) => control.outerHTML),
    );
    expect(unlabelled).toEqual([]);

    // Tab to "Split evenly", press it, tab on to submit and press Enter: no mouse involved.
    const focusNext = async (id: string) => {
      for (let presses = 0; presses < 60; presses++) {
        await page.keyboard.press('Tab');
        if ((await page.evaluate(() => document.activeElement?.id)) === id) return;
      }
      throw new Error(`could not reach #${id} with Tab`);
    };
    // A category's description opens from its disclosure button, and Escape closes it.
    expect(await page.locator('#desc-healthcare').isVisible()).toBe(false);
    await focusNext('info-healthcare');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#desc-healthcare').isVisible(), POLL).toBe(true);
    expect(await page.locator('#info-healthcare').getAttribute('aria-expanded')).toBe('true');
    expect(await page.locator('#desc-healthcare').textContent()).toContain('Hospitals');
    await page.keyboard.press('Escape');
    await expect.poll(() => page.locator('#desc-healthcare').isVisible(), POLL).toBe(false);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('info-healthcare');

    await focusNext('split-evenly');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#total').textContent(), POLL).toBe('100.00 %');
    await focusNext('submit');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/s\/[^/]+$/);
    await page.locator('#result-table').waitFor();
    expect(await cell(page, 'education', 'mine')).toBe('10.00 %');
    await page.context().close();
  });

  it('says so when a result link leads nowhere', async () => {
    const page = await newPage();
    await page.goto(`${server.url}/s/00000000-0000-4000-8000-000000000000`);
    await expect.poll(() => page.locator('h1').textContent(), POLL).toBe('Result not found');
    await page.context().close();
  });

  it('fits a phone-sized screen on every page', async () => {
    const context = await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });
    const page = await newPage(context);
    // How far the widest thing on the page (the result table included) sticks out sideways.
    const overflow = () =>
      page.evaluate(() =>
        Math.max(
          document.documentElement.scrollWidth - window.innerWidth,
          ...[...document.querySelectorAll('.table-scroll')].map((box) => box.scrollWidth - box.clientWidth),
        ),
      );
    await openAllocate(page);
    expect(await overflow()).toBeLessThanOrEqual(0);
    await screenshot(page, 'allocate-phone');

    await page.locator('#consent-accept').click();
    await page.locator('#split-evenly').click();
    await page.locator('#submit').click();
    await page.waitForURL(/\/s\/[^/]+$/);
    await page.locator('#result-table').waitFor();
    expect(await overflow()).toBeLessThanOrEqual(0);
    await screenshot(page, 'result-phone');

    await page.getByRole('link', { name: 'Live', exact: true }).click();
    await page.locator('#live-bars li').first().waitFor();
    expect(await overflow()).toBeLessThanOrEqual(0);
    await screenshot(page, 'live-phone');
    await context.close();
  });
});

describe('live page', () => {
  ownServer();
  it('updates in place when another client submits through the API', async () => {
    const page = await newPage();
    await page.goto(`${server.url}/live`);
    await expect.poll(() => page.locator('#connection-state').textContent(), POLL).toBe('Live');
    const before = await firstTotal(page);
    await page.evaluate(() => {
      (window as unknown as { notReloaded: boolean }).notReloaded = true;
    });

    await server.submit([100]);

    await expect
      .poll(async () => Number(await page.locator('#total-submissions').getAttribute('data-value')), POLL)
      .toBe(before + 1);
    await expect.poll(() => page.locator('#total-submissions').textContent(), POLL).toBe(String(before + 1));
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    expect(await page.locator('#last-update').getAttribute('datetime')).toMatch(/^\d{4}-\d\d-\d\dT/);
    await screenshot(page, 'live');
    await page.context().close();
  });
});

describe('when the server goes away', () => {
  ownServer();

  it('keeps the numbers after a network failure and submits once the server is back', async () => {
    const page = await newPage();
    await openAllocate(page);
    await page.locator('#consent-decline').click();
    await fill(page, SPLIT);
    await expect.poll(() => page.locator('#submit').isEnabled(), POLL).toBe(true);

    await server.stop();
    await page.locator('#submit').click();
    await expect.poll(() => page.locator('#form-errors').textContent(), POLL).toContain('Could not reach the server');
    expect(await page.locator('#pct-housing').inputValue()).toBe('3.25');
    expect(await page.locator('#total').textContent()).toBe('100.00 %');
    expect(new URL(page.url()).pathname).toBe('/');

    await server.launch();
    await page.locator('#submit').click();
    await page.waitForURL(/\/s\/[^/]+$/);
    await page.locator('#result-table').waitFor();
    expect(await cell(page, 'housing', 'mine')).toBe('3.25 %');
    // Declined: nothing kept, so History has nothing to list.
    await page.getByRole('link', { name: 'History', exact: true }).click();
    await expect.poll(() => page.locator('main').textContent(), POLL).toContain('chose not to keep a voter token');
    await page.context().close();
  });

  it('live page reconnects by itself after a restart', async () => {
    const page = await newPage();
    await page.goto(`${server.url}/live`);
    await expect.poll(() => page.locator('#connection-state').textContent(), POLL).toBe('Live');
    const before = await firstTotal(page);

    await server.stop();
    await expect.poll(() => page.locator('#connection-state').textContent(), POLL).toBe('Reconnecting…');
    await server.launch();
    await expect.poll(() => page.locator('#connection-state').textContent(), POLL).toBe('Live');

    await server.submit([50, 50]);
    await expect
      .poll(async () => Number(await page.locator('#total-submissions').getAttribute('data-value')), POLL)
      .toBe(before + 1);
    await page.context().close();
  });
});

describe('accessibility', () => {
  ownServer();

  it('has no WCAG 2.1 A/AA violations axe-core can find on any page', async () => {
    // axe is injected as an inline script, which the app's Content-Security-Policy forbids.
    const context = await browser.newContext({ bypassCSP: true });
    const page = await newPage(context);
    const violations = async (name: string) => {
      await page.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
      const found = await page.evaluate(async () => {
        const axe = (window as unknown as { axe: AxeRunner }).axe;
        const result = await axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] });
        return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
      });
      return found.map((line) => `${name}: ${line}`);
    };

    await openAllocate(page);
    const found = await violations('allocate');
    await page.locator('#pct-healthcare').fill('12.345'); // a field in error
    found.push(...(await violations('allocate with an error')));
    await page.locator('#consent-accept').click();
    await page.locator('#split-evenly').click();
    await page.locator('#submit').click();
    await page.waitForURL(/\/s\/[^/]+$/);
    await page.locator('#result-table').waitFor();
    found.push(...(await violations('result')));
    await page.getByRole('link', { name: 'History', exact: true }).click();
    await page.locator('#history-list').waitFor();
    found.push(...(await violations('history')));
    await page.getByRole('link', { name: 'Live', exact: true }).click();
    await page.locator('#live-bars li').first().waitFor();
    found.push(...(await violations('live')));
    expect(found).toEqual([]);
    await context.close();
  });
});

describe('GraphiQL', () => {
  ownServer();

  it('is bundled (no CDN) and runs a query against the API', async () => {
    const page = await newPage();
    const failures: string[] = [];
    page.on('pageerror', (error) => failures.push(error.message));
    page.on('requestfailed', (request) => failures.push(`${request.url()}: ${request.failure()?.errorText}`));
    page.on('console', (message) => {
      if (message.type() === 'error') failures.push(message.text());
    });
    const foreign: string[] = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(server.url) && !request.url().startsWith('data:')) foreign.push(request.url());
    });

    await page.goto(`${server.url}/graphiql`);
    // The editor loads its default query asynchronously; run it only once it is there.
    await expect.poll(() => page.locator('.graphiql-query-editor').textContent(), POLL).toContain('totalSubmissions');
    await page.locator('.graphiql-execute-button').click();
    // The editor draws spaces as no-break spaces.
    const result = async () => (await page.locator('.result-window').textContent())?.replace(/\s+/g, ' ');
    await expect.poll(result, POLL).toContain('"totalSubmissions": 0');
    expect(foreign).toEqual([]);
    expect(failures).toEqual([]);
    await screenshot(page, 'graphiql');
    await page.context().close();
  });
});

describe('rate limit', () => {
  beforeAll(async () => {
    server = await Server.start(['--submit-rate-per-minute', '1']);
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('shows the server’s rate limit with a countdown and re-enables submit when it ends', async () => {
    await server.submit([100]); // this address's one submission for the minute
    const page = await newPage();
    // The page's clock, so the test can move past the wait instead of sitting through it.
    await page.clock.install();
    await openAllocate(page);
    await fill(page, SPLIT);
    await page.locator('#submit').click();
    await expect.poll(() => page.locator('#form-errors').textContent(), POLL).toMatch(/^Too many submissions/);
    expect(await page.locator('#form-errors').textContent()).toContain('Your numbers are kept');
    expect(await page.locator('#pct-public-safety').inputValue()).toBe('4.50');
    expect(await page.locator('#total').textContent()).toBe('100.00 %');
    expect(new URL(page.url()).pathname).toBe('/');

    // A countdown from what the server said (extensions.retryAfterSeconds), never "Ready".
    const seconds = Number(await page.locator('#countdown').getAttribute('data-seconds'));
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThanOrEqual(60);
    expect(await page.locator('#submit').isDisabled()).toBe(true);
    expect(await page.locator('#submit-hint').textContent()).toBe(`You can submit again in ${seconds} s.`);
    await screenshot(page, 'allocate-rate-limited');

    await page.clock.runFor(2_000);
    await expect
      .poll(async () => Number(await page.locator('#countdown').getAttribute('data-seconds')), POLL)
      .toBeLessThan(seconds);
    expect(await page.locator('#submit').isDisabled()).toBe(true);

    await page.clock.runFor(seconds * 1000);
    await expect.poll(() => page.locator('#submit').isEnabled(), POLL).toBe(true);
    expect(await page.locator('#submit-hint').textContent()).toBe('Ready: your split adds up to 100.00 %.');
    expect(await page.locator('#form-errors').textContent()).toBe('');
    expect(await page.locator('#countdown').count()).toBe(0);
    await page.context().close();
  });
});
