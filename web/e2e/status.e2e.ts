// The status page (issue 11): `/status` loads, its charts draw, its numbers move after a
// submission, no horizontal scroll on a phone, axe finds nothing in either theme, the
// screenshots; with `--status-page false` it is the 404 and its link is gone; with
// `--metrics false` it says the metrics are not served here.

import { copyFile, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, LAPTOP, launchBrowser, openPage, PHONE, POLL, Server } from './harness';

const require = createRequire(import.meta.url);
const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Each fold waits this long before it commits, so a scrape (every 2 s) sees the outbox full. */
const FOLD_PAUSE_MS = 3000;
const CHARTS = ['metric-writes', 'metric-reads', 'metric-outbox', 'metric-fold', 'metric-subscribers'];
/** Fold latency has no line before the first fold. */
const ALWAYS_DRAWN = CHARTS.filter((id) => id !== 'metric-fold');

let browser: Browser;
let server: Server;

beforeAll(async () => {
  browser = await launchBrowser();
  server = await Server.start(['--worker-fold-pause-ms', String(FOLD_PAUSE_MS)]);
});

afterAll(async () => {
  await server?.dispose();
  await browser?.close();
});

/** The page once it shows live figures and every chart has drawn a line of two points (the
 * fold latency's too once the server has folded). */
async function openStatus(page: Page, target: Server = server): Promise<void> {
  await page.goto(`${target.url}/status`);
  await expect.poll(() => page.locator('#status-state').getAttribute('data-state'), POLL).toBe('live');
  const folded = (await page.locator('#metric-fold-value').getAttribute('data-value')) !== '';
  for (const id of folded ? CHARTS : ALWAYS_DRAWN) {
    await expect
      .poll(() => page.locator(`#${id} svg.spark`).getAttribute('data-points'), POLL)
      .toMatch(/^([2-9]|\d\d+)$/);
  }
}

function value(page: Page, selector: string): Promise<number> {
  return page
    .locator(selector)
    .getAttribute('data-value')
    .then((v) => (v === null || v === '' ? Number.NaN : Number(v)));
}

/** Every value `selector`'s `data-value` takes from now on, recorded in the page. */
async function record(page: Page, selector: string, name: string): Promise<void> {
  await page.evaluate(
    ([selector, name]) => {
      const seen: number[] = [];
      (window as unknown as Record<string, number[]>)[name] = seen;
      new MutationObserver(() => {
        const v = document.querySelector<HTMLElement>(selector)?.dataset.value;
        if (v) seen.push(Number(v));
      }).observe(document.getElementById('main') as HTMLElement, {
        subtree: true,
        childList: true,
        attributes: true,
        characterData: true,
      });
    },
    [selector, name] as const,
  );
}

function recorded(page: Page, name: string): Promise<number[]> {
  return page.evaluate((name) => (window as unknown as Record<string, number[]>)[name] ?? [], name);
}

describe('status page', () => {
  it('is linked from every page, loads, and draws every chart with its value in words', async () => {
    const { context, page } = await openPage(browser);
    await page.goto(`${server.url}/`);
    await page.locator('footer a[href="/status"]').click();
    await page.waitForURL(`${server.url}/status`);
    await openStatus(page);
    expect(await page.title()).toBe('Status · Tax Budget Allocator');
    expect(await page.locator('footer a[href="/status"]').getAttribute('aria-current')).toBe('page');

    for (const id of ALWAYS_DRAWN) {
      const chart = page.locator(`#${id} svg.spark`);
      expect(await chart.getAttribute('role')).toBe('img');
      expect(await chart.getAttribute('aria-label')).toMatch(/over the last \d+ seconds: lowest .*, now /);
      // A line: a move and at least one segment.
      expect(await chart.locator('path.spark-line').first().getAttribute('d')).toMatch(/^M[\d.]+ [\d.]+[LH]/);
      expect(await page.locator(`#${id}-value`).textContent()).toMatch(/^\d[\d,.]*$/);
    }
    expect(await page.locator('#metric-reads path.spark-line').count()).toBe(3);
    // A fresh server has not folded yet: no line, and words that say so.
    expect(await page.locator('#metric-fold-value').textContent()).toBe('–');
    expect(await page.locator('#metric-fold-note').textContent()).toBe('No fold yet');
    expect(await page.locator('#metric-fold svg.spark').getAttribute('aria-label')).toBe('Fold latency: no data yet');
    expect(await page.locator('#dependency-database').textContent()).toBe('Up');
    expect(await page.locator('#dependency-redis').textContent()).toBe('Not used');
    expect(await page.locator('#database-pool').textContent()).toMatch(/^\d+ in use of \d+$/);
    await context.close();
  });

  it('moves its numbers after a submission: writes, outbox, fold latency, versions', async () => {
    const { context, page } = await openPage(browser);
    await openStatus(page);
    const writesBefore = await value(page, '#writes-total');
    const feedBefore = await value(page, '#version-feed');
    const cacheBefore = await value(page, '#version-cache');
    expect(writesBefore).toBeGreaterThanOrEqual(0);
    await record(page, '#metric-writes-value', 'writes');
    await record(page, '#metric-outbox-value', 'outbox');

    await server.submit([40, 30, 20, 10]);

    await expect.poll(() => value(page, '#writes-total'), POLL).toBe(writesBefore + 1);
    // One submission in a two-second window: a rate above zero, shown at least once.
    await expect.poll(async () => Math.max(0, ...(await recorded(page, 'writes'))), POLL).toBeGreaterThan(0);
    // The fold holds it for three seconds: the outbox shows it, then empties.
    await expect.poll(async () => Math.max(0, ...(await recorded(page, 'outbox'))), POLL).toBe(1);
    await expect.poll(() => value(page, '#version-feed'), POLL).toBeGreaterThan(feedBefore);
    await expect.poll(() => value(page, '#metric-outbox-value'), POLL).toBe(0);
    expect(await value(page, '#version-cache')).toBeGreaterThan(cacheBefore);
    // The fold's own duration, from Δsum / Δcount of fold_duration_seconds.
    await expect.poll(() => value(page, '#metric-fold-value'), POLL).toBeGreaterThanOrEqual(FOLD_PAUSE_MS);
    expect(await page.locator('#metric-fold-value').textContent()).toMatch(/^\d{1,3}(,\d{3})*$/);
    // From then on the fold chart holds the last fold's time.
    await expect.poll(() => page.locator('#metric-fold svg.spark').getAttribute('data-points'), POLL).not.toBe('1');
    expect(await page.locator('#metric-fold path.spark-line').getAttribute('d')).toMatch(/^M[\d.]+ [\d.]+L/);
    expect(await page.locator('#metric-fold-note').textContent()).toMatch(/^1 fold since start/);
    await context.close();
  });

  it('stops reading /metrics while hidden and starts again when shown', async () => {
    const { context, page } = await openPage(browser);
    let scrapes = 0;
    page.on('request', (request) => {
      if (new URL(request.url()).pathname === '/metrics') scrapes++;
    });
    await openStatus(page);
    const setVisibility = (state: 'hidden' | 'visible') =>
      page.evaluate((state) => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
        document.dispatchEvent(new Event('visibilitychange'));
      }, state);
    await setVisibility('hidden');
    await expect.poll(() => page.locator('#status-state').getAttribute('data-state'), POLL).toBe('paused');
    const whileHidden = scrapes;
    // Absence takes time to show: two and a half polling intervals without a request.
    await page.waitForTimeout(5000);
    expect(scrapes - whileHidden).toBeLessThanOrEqual(1);
    await setVisibility('visible');
    await expect.poll(() => scrapes, POLL).toBeGreaterThan(whileHidden + 1);
    await expect.poll(() => page.locator('#status-state').getAttribute('data-state'), POLL).toBe('live');
    await context.close();
  });

  it('fits a phone (375 × 800) without horizontal scroll, light and dark', async () => {
    for (const colorScheme of ['light', 'dark'] as const) {
      const { context, page } = await openPage(browser, { ...PHONE, colorScheme });
      await openStatus(page);
      const widths = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        client: document.documentElement.clientWidth,
        widest: Math.max(...[...document.querySelectorAll('main *')].map((e) => e.getBoundingClientRect().right)),
      }));
      expect(widths.scroll, `${colorScheme}: ${JSON.stringify(widths)}`).toBeLessThanOrEqual(widths.client);
      expect(widths.widest).toBeLessThanOrEqual(375);
      // The charts take the card's width.
      const chart = await page.locator('#metric-writes svg.spark').boundingBox();
      expect(chart?.width).toBeGreaterThan(250);
      await context.close();
    }
  });

  it('has no WCAG 2.1 A/AA violations axe-core can find, light and dark, laptop and phone', async () => {
    interface AxeRunner {
      run(
        context: Document,
        options: { runOnly: string[] },
      ): Promise<{ violations: { id: string; nodes: { target: string[] }[] }[] }>;
    }
    const found: string[] = [];
    for (const colorScheme of ['light', 'dark'] as const) {
      for (const viewport of [LAPTOP, PHONE]) {
        const { context, page } = await openPage(browser, { ...viewport, colorScheme, bypassCSP: true });
        await openStatus(page);
        await page.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
        const violations = await page.evaluate(async () => {
          const axe = (window as unknown as { axe: AxeRunner }).axe;
          const result = await axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] });
          return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
        });
        found.push(...violations.map((v) => `${colorScheme} ${viewport.viewport?.width}: ${v}`));
        await context.close();
      }
    }
    expect(found).toEqual([]);
  });

  it('saves screenshots at 1280 × 800 and 375 × 800, light and dark', async () => {
    const dir = path.join(ARTIFACTS, 'gallery');
    await mkdir(dir, { recursive: true });
    const docs = process.env.E2E_UPDATE_DOCS ? path.resolve(WEB, '..', 'docs', 'screenshots') : null;
    if (docs) await mkdir(docs, { recursive: true });
    const saved: string[] = [];
    for (const colorScheme of ['light', 'dark'] as const) {
      for (const [size, viewport] of [
        ['1280', LAPTOP],
        ['375', PHONE],
      ] as const) {
        const { context, page } = await openPage(browser, { ...viewport, colorScheme, reducedMotion: 'reduce' });
        await openStatus(page);
        const file = path.join(dir, `status-${size}-${colorScheme}.jpg`);
        await page.screenshot({ path: file, type: 'jpeg', quality: 70, fullPage: true });
        if (docs) await copyFile(file, path.join(docs, path.basename(file)));
        saved.push(file);
        await context.close();
      }
    }
    expect(saved).toHaveLength(4);
  });
});

describe('status page switched off or without metrics', () => {
  it('with --status-page false: /status is the 404 and no page links to it', async () => {
    const off = await Server.start(['--status-page', 'false']);
    try {
      const response = await fetch(`${off.url}/status`);
      expect(response.status).toBe(404);
      const { context, page } = await openPage(browser);
      await page.goto(`${off.url}/status`);
      await page.locator('#not-found').waitFor();
      expect(await page.locator('#did-you-mean').count()).toBe(0);
      expect(await page.locator('a[href="/status"]').count()).toBe(0);
      await page.goto(`${off.url}/`);
      await page.locator('#pct-healthcare').waitFor();
      expect(await page.locator('a[href="/status"]').count()).toBe(0);
      expect(await page.locator('footer a[href="/graphiql"]').isVisible()).toBe(true);
      await context.close();
    } finally {
      await off.dispose();
    }
  });

  it('with --metrics false: says the metrics are not served here', async () => {
    const off = await Server.start(['--metrics', 'false']);
    try {
      const { context, page } = await openPage(browser, PHONE);
      await page.goto(`${off.url}/status`);
      await expect.poll(() => page.locator('#status-state').getAttribute('data-state'), POLL).toBe('not-served');
      expect(await page.locator('#status-state').textContent()).toBe('The metrics are not served here');
      expect(await page.locator('#metrics-not-served').textContent()).toContain('--metrics-bind');
      expect(await page.locator('svg.spark').count()).toBe(0);
      await context.close();
    } finally {
      await off.dispose();
    }
  });
});
