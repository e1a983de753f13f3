// Distributions and trends: /trends empty on a fresh server and drawing the first point when
// someone submits; the result page's "Where you stand" from known splits (the histogram with
// the visitor's share marked, the rank in words, median and quartiles) and its update when the
// average moves; /trends switching ranges and following a submission; both pages axe-clean in
// light and dark, on a phone without sideways scroll; and their screenshots.

import { copyFile, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, LAPTOP, launchBrowser, openPage, PHONE, POLL, Server, settled } from './harness';

const require = createRequire(import.meta.url);
const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let browser: Browser;
let server: Server;

beforeAll(async () => {
  browser = await launchBrowser();
  server = await Server.start();
});

afterAll(async () => {
  await server?.dispose();
  await browser?.close();
});

/** Healthcare takes what defense leaves; education gets nothing from anyone. */
function defenseSplit(defense: number): number[] {
  return [100 - defense, 0, defense];
}

async function counted(): Promise<number> {
  const data = await server.graphql<{ aggregates: { totalSubmissions: number } }>(
    '{ aggregates { totalSubmissions } }',
  );
  return data.aggregates.totalSubmissions;
}

/** Waits (up to the deadline) until the server's fold has counted `n` submissions. */
async function folded(n: number): Promise<void> {
  await expect.poll(counted, POLL).toBe(n);
}

/** The national average per category slug, as the API has it now, with two decimals. */
async function nationalAverage(): Promise<Record<string, string>> {
  const data = await server.graphql<{
    aggregates: { categories: { category: { slug: string }; averagePercentage: number }[] };
  }>('{ aggregates { categories { category { slug } averagePercentage } } }');
  return Object.fromEntries(data.aggregates.categories.map((c) => [c.category.slug, c.averagePercentage.toFixed(2)]));
}

function latest(page: Page, slug: string): Promise<string | null> {
  return page.locator(`#trend-table tr[data-category="${slug}"] td[data-column="latest"]`).getAttribute('data-value');
}

/** How many pixels of a canvas are painted: Chart.js drew something, not only its frame. */
function inked(page: Page, selector: string): Promise<number> {
  return page.locator(selector).evaluate((canvas) => {
    const c = canvas as HTMLCanvasElement;
    const data = c.getContext('2d')?.getImageData(0, 0, c.width, c.height).data;
    let painted = 0;
    if (data) for (let i = 3; i < data.length; i += 4) if ((data[i] ?? 0) > 0) painted++;
    return painted;
  });
}

/** Ids of the submissions by their defense share. */
const ids = new Map<number, string>();

describe('trends on a fresh server', () => {
  it('says nobody has submitted, then draws the first point when someone does', async () => {
    const { context, page } = await openPage(browser);
    await page.goto(`${server.url}/`);
    await page.getByRole('link', { name: 'Trends', exact: true }).click();
    await page.waitForURL(`${server.url}/trends`);
    expect(await page.title()).toBe('Trends · Tax Budget Allocator');
    expect(await page.locator('nav a[href="/trends"]').getAttribute('aria-current')).toBe('page');
    await page.locator('#trend-empty').waitFor();
    expect(await page.locator('#trend-empty').textContent()).toContain('Nobody submitted in the last day.');
    expect(await page.locator('#trend-figure').isHidden()).toBe(true);
    expect(await page.locator('#range-day').getAttribute('aria-pressed')).toBe('true');
    await expect.poll(() => page.locator('#trend-connection').textContent(), POLL).toBe('Live');

    ids.set(0, await server.submit(defenseSplit(0)));

    // The live snapshot starts the first point in place: no reload, no new request for the range.
    await expect.poll(() => page.locator('#trend-chart').getAttribute('data-points'), POLL).toBe('1');
    expect(await page.locator('#trend-empty').isHidden()).toBe(true);
    expect(await latest(page, 'healthcare')).toBe('100.00');
    expect(await latest(page, 'defense')).toBe('0.00');
    await expect.poll(() => inked(page, '#trend-chart'), POLL).toBeGreaterThan(0);
    await context.close();
  });
});

describe('where you stand on the result page', () => {
  it('marks the visitor’s share on each histogram and says their rank in words', async () => {
    for (const defense of [10, 20, 30]) ids.set(defense, await server.submit(defenseSplit(defense)));
    await folded(4);
    const { context, page } = await openPage(browser);
    await page.goto(`${server.url}/s/${ids.get(20)}`);
    // Defense over everyone: 0, 10, 20, 30; two of the four gave less than 20.
    await expect
      .poll(() => page.locator('#rank-defense').textContent(), POLL)
      .toBe('You gave Defense & Military more than 50 % of citizens.');
    expect(await page.locator('#stats-defense').textContent()).toBe('Median 10.00 % · middle half 0.00–20.00 %');
    const chart = page.locator('li[data-category="defense"] svg.spread-chart');
    expect(await chart.getAttribute('data-counts')).toBe('1,0,1,0,1,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0');
    expect(await chart.getAttribute('data-own-bucket')).toBe('4');
    expect(await chart.locator('rect.spread-bar').count()).toBe(4);
    expect(await chart.locator('path.spread-mine').getAttribute('d')).toBe('M20 0V40');
    expect(await chart.getAttribute('role')).toBe('img');
    expect(await chart.getAttribute('aria-label')).toBe(
      'Defense & Military: 4 citizens gave 0 to 35 %, counted in ranges of 5 points; 4 ranges tie for the most, 1 citizen each; your 20.00 % is marked.',
    );
    // Healthcare: 100, 90, 80, 70; only 70 is less than 80, which is the median (the lowest
    // value that half gave or less).
    expect(await page.locator('#rank-healthcare').textContent()).toBe(
      'You gave Healthcare more than 25 % of citizens, the median share.',
    );
    // Nobody gave education anything: a tie of everyone at 0.
    expect(await page.locator('#rank-education').textContent()).toBe(
      'You gave Education nothing, like every citizen counted.',
    );
    expect(await page.locator('#stats-education').textContent()).toBe('Median 0.00 % · middle half all at 0.00 %');
    expect(await page.locator('#spread-lede').textContent()).toContain('How all 4 citizens split each category');
    expect(await page.locator('#spreads > li').count()).toBe(10);

    // One more citizen: 20 is now the median, and two of five gave less.
    await server.submit(defenseSplit(40));
    await expect
      .poll(() => page.locator('#rank-defense').textContent(), POLL)
      .toBe('You gave Defense & Military more than 40 % of citizens, the median share.');
    expect(await chart.getAttribute('data-counts')).toBe('1,0,1,0,1,0,1,0,1,0,0,0,0,0,0,0,0,0,0,0');
    await context.close();
  });

  it('words the lowest share, nothing given, and the median share', async () => {
    await folded(5);
    const { context, page } = await openPage(browser);
    await page.goto(`${server.url}/s/${ids.get(0)}`);
    await expect
      .poll(() => page.locator('#rank-defense').textContent(), POLL)
      .toBe('You gave Defense & Military nothing, like 20 % of citizens.');
    // Healthcare 100 is the most anyone gave: four of five gave less.
    expect(await page.locator('#rank-healthcare').textContent()).toBe(
      'You gave Healthcare more than 80 % of citizens.',
    );
    await page.goto(`${server.url}/s/${ids.get(30)}`);
    await expect
      .poll(() => page.locator('#rank-healthcare').textContent(), POLL)
      .toBe('You gave Healthcare more than 20 % of citizens.');
    await page.goto(`${server.url}/s/${ids.get(10)}`);
    await expect
      .poll(() => page.locator('#rank-defense').textContent(), POLL)
      .toBe('You gave Defense & Military more than 20 % of citizens.');
    // Healthcare 90: 80, 70 and 60 are less.
    expect(await page.locator('#rank-healthcare').textContent()).toBe(
      'You gave Healthcare more than 60 % of citizens.',
    );
    await context.close();
  });
});

describe('trends', () => {
  it('draws the average per category, switches ranges and follows a new submission', async () => {
    await folded(5);
    const { context, page } = await openPage(browser);
    await page.goto(`${server.url}/trends`);
    await expect.poll(() => page.locator('#trend-chart').getAttribute('data-bucket'), POLL).toBe('HOUR');
    const national = await nationalAverage();
    await expect.poll(() => latest(page, 'defense'), POLL).toBe(national.defense);
    expect(await latest(page, 'healthcare')).toBe(national.healthcare);
    expect(Number(await page.locator('#trend-chart').getAttribute('data-points'))).toBeGreaterThanOrEqual(1);
    await expect.poll(() => inked(page, '#trend-chart'), POLL).toBeGreaterThan(0);
    expect(await page.locator('#trend-summary').textContent()).toMatch(
      /^(1 hourly point, at|\d+ hourly points from) .+; 5 submissions in all, 5 in this range\./,
    );
    expect(await page.locator('#trend-table tbody tr').count()).toBe(10);
    expect(await page.locator('#trend-chart').getAttribute('role')).toBe('img');
    expect(await page.locator('#trend-chart').getAttribute('aria-describedby')).toBe('trend-summary');

    for (const [range, bucket, noun] of [
      ['hour', 'MINUTE', 'per-minute'],
      ['all', 'DAY', 'daily'],
      ['day', 'HOUR', 'hourly'],
    ] as const) {
      await page.locator(`#range-${range}`).click();
      await expect.poll(() => page.locator('#trend-chart').getAttribute('data-bucket'), POLL).toBe(bucket);
      expect(await page.locator(`#range-${range}`).getAttribute('aria-pressed')).toBe('true');
      expect(await page.locator('[aria-pressed="true"]').count()).toBe(1);
      expect(Number(await page.locator('#trend-chart').getAttribute('data-points'))).toBeGreaterThanOrEqual(1);
      expect(await page.locator('#trend-summary').textContent()).toContain(noun);
      expect(await latest(page, 'defense')).toBe(national.defense);
    }

    // A submission from elsewhere moves the newest point in place.
    await expect.poll(() => page.locator('#trend-connection').textContent(), POLL).toBe('Live');
    await page.evaluate(() => {
      (window as unknown as { notReloaded: boolean }).notReloaded = true;
    });
    await server.submit(defenseSplit(100));
    await folded(6);
    const after = await nationalAverage();
    expect(after.defense).not.toBe(national.defense);
    await expect.poll(() => latest(page, 'defense'), POLL).toBe(after.defense);
    expect(await latest(page, 'healthcare')).toBe(after.healthcare);
    await expect.poll(() => page.locator('#trend-summary').textContent(), POLL).toContain('6 submissions in all');
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    await context.close();
  });
});

describe('accessibility and phones', () => {
  interface AxeRunner {
    run(
      context: Document,
      options: { runOnly: string[] },
    ): Promise<{ violations: { id: string; nodes: { target: string[] }[] }[] }>;
  }

  async function openResult(page: Page): Promise<void> {
    await page.goto(`${server.url}/s/${ids.get(20)}`);
    await expect.poll(() => page.locator('#rank-defense').getAttribute('data-rank'), POLL).toMatch(/^\d/);
  }

  async function openTrends(page: Page): Promise<void> {
    await page.goto(`${server.url}/trends`);
    await expect.poll(() => page.locator('#trend-chart').getAttribute('data-points'), POLL).toMatch(/^[1-9]/);
  }

  it('has no WCAG 2.1 A/AA violations axe-core can find, light and dark, laptop and phone', async () => {
    const found: string[] = [];
    for (const colorScheme of ['light', 'dark'] as const) {
      for (const viewport of [LAPTOP, PHONE]) {
        const { context, page } = await openPage(browser, { ...viewport, colorScheme, bypassCSP: true });
        const check = async (name: string) => {
          await page.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
          const violations = await page.evaluate(async () => {
            const axe = (window as unknown as { axe: AxeRunner }).axe;
            const result = await axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] });
            return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
          });
          found.push(...violations.map((v) => `${colorScheme} ${viewport.viewport?.width}: ${name}: ${v}`));
        };
        await openResult(page);
        await check('result');
        await openTrends(page);
        await check('trends');
        await page.locator('#range-hour').click();
        await expect.poll(() => page.locator('#trend-chart').getAttribute('data-bucket'), POLL).toBe('MINUTE');
        await check('trends, last hour');
        await context.close();
      }
    }
    expect(found).toEqual([]);
  });

  it('fits a phone (375 × 800) without horizontal scroll, light and dark', async () => {
    for (const colorScheme of ['light', 'dark'] as const) {
      const { context, page } = await openPage(browser, { ...PHONE, colorScheme });
      const widths = () =>
        page.evaluate(() => ({
          inner: window.innerWidth,
          scroll: document.documentElement.scrollWidth,
          client: document.documentElement.clientWidth,
          // The result table may scroll inside its own box; nothing else may stick out.
          widest: Math.max(
            ...[...document.querySelectorAll('body *')]
              .filter((e) => !e.closest('.table-scroll'))
              .map((e) => e.getBoundingClientRect().right),
          ),
        }));
      for (const [name, load] of [
        ['result', openResult],
        ['trends', openTrends],
      ] as const) {
        await load(page);
        await settled(page);
        const seen = await widths();
        expect(seen.inner, `${colorScheme} ${name}: ${JSON.stringify(seen)}`).toBe(375);
        expect(seen.scroll, `${colorScheme} ${name}: ${JSON.stringify(seen)}`).toBeLessThanOrEqual(seen.client);
        expect(seen.widest, `${colorScheme} ${name}: ${JSON.stringify(seen)}`).toBeLessThanOrEqual(375);
      }
      // The four links of the header stay on its one line.
      const tops = await page
        .locator('nav[aria-label="Main"] a')
        .evaluateAll((links) => links.map((link) => Math.round(link.getBoundingClientRect().top)));
      expect(tops).toHaveLength(4);
      expect(new Set(tops).size).toBe(1);
      // The distributions take the card's width.
      await openResult(page);
      const chart = await page.locator('li[data-category="defense"] svg.spread-chart').boundingBox();
      expect(chart?.width).toBeGreaterThan(280);
      await context.close();
    }
  });
});

/** A varied split in display order, the same for the same `k`, adding up to exactly 100. */
function variedSplit(k: number): number[] {
  const weights = [25, 15, 8, 12, 14, 8, 6, 5, 4, 3].map(
    (w, i) => ((k * 7 + i * 13) % 11 === 0 ? 0 : w) * (1 + ((k * (i + 3)) % 5)),
  );
  const sum = weights.reduce((a, b) => a + b, 0);
  const hundredths = weights.map((w) => Math.floor((w / sum) * 10_000));
  hundredths[0] = (hundredths[0] ?? 0) + 10_000 - hundredths.reduce((a, b) => a + b, 0);
  return hundredths.map((h) => h / 100);
}

describe('screenshots', () => {
  it('saves the distributions and /trends at 1280 × 800 and 375 × 800, light and dark', async () => {
    // Histograms of a few dozen different citizens, not only of the splits above.
    const before = await counted();
    for (let k = 0; k < 30; k++) await server.submit(variedSplit(k));
    await folded(before + 30);
    const dir = path.join(ARTIFACTS, 'gallery');
    await mkdir(dir, { recursive: true });
    const docs = process.env.E2E_UPDATE_DOCS ? path.resolve(WEB, '..', 'docs', 'screenshots') : null;
    if (docs) await mkdir(docs, { recursive: true });
    const saved: string[] = [];
    const keep = async (file: string) => {
      if (docs) await copyFile(file, path.join(docs, path.basename(file)));
      saved.push(file);
    };
    for (const colorScheme of ['light', 'dark'] as const) {
      for (const [size, viewport] of [
        ['1280', LAPTOP],
        ['375', PHONE],
      ] as const) {
        const { context, page } = await openPage(browser, { ...viewport, colorScheme, reducedMotion: 'reduce' });
        await page.goto(`${server.url}/s/${ids.get(20)}`);
        await expect.poll(() => page.locator('#rank-defense').getAttribute('data-rank'), POLL).toMatch(/^\d/);
        await page.locator('#consent-dismiss').click();
        await settled(page);
        const distribution = path.join(dir, `distribution-${size}-${colorScheme}.jpg`);
        await page.locator('#distributions').screenshot({ path: distribution, type: 'jpeg', quality: 70 });
        await keep(distribution);

        await page.getByRole('link', { name: 'Trends', exact: true }).click();
        await expect.poll(() => page.locator('#trend-chart').getAttribute('data-points'), POLL).toMatch(/^[1-9]/);
        await expect.poll(() => page.locator('#trend-connection').textContent(), POLL).toBe('Live');
        await settled(page);
        const trends = path.join(dir, `trends-${size}-${colorScheme}.jpg`);
        await page.screenshot({ path: trends, type: 'jpeg', quality: 70, fullPage: true });
        await keep(trends);
        await context.close();
      }
    }
    expect(saved).toHaveLength(8);
  });
});
