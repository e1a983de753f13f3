// What the end-to-end tests stand on: the real server binary on a random port with its own
// SQLite file, the built app, and Debian's Chromium driven by playwright-core.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, type BrowserContextOptions, type Page, chromium } from 'playwright-core';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REPO = path.resolve(WEB, '..');
export const ARTIFACTS = process.env.E2E_ARTIFACTS ?? path.join(WEB, 'test-results');

/** How long a condition may take before a test gives up. */
export const DEADLINE_MS = 20_000;

/** Polling of `expect.poll`: up to the deadline, every 50 ms. */
export const POLL = { timeout: DEADLINE_MS, interval: 50 };

export const PHONE: BrowserContextOptions = { viewport: { width: 375, height: 800 }, isMobile: true, hasTouch: true };
export const LAPTOP: BrowserContextOptions = { viewport: { width: 1280, height: 800 } };

/** A valid split (adds up to exactly 100), by category slug. */
export const SPLIT: Record<string, string> = {
  healthcare: '25',
  education: '20',
  defense: '5',
  infrastructure: '10',
  'social-security': '15',
  environment: '10',
  science: '5',
  'public-safety': '4.5',
  housing: '3.25',
  other: '2.25',
};

function serverBinary(): string {
  const binary =
    process.env.TAX_BUDGET_BIN ??
    path.join(process.env.CARGO_TARGET_DIR ?? path.join(REPO, 'target'), 'debug', 'tax-budget');
  if (!existsSync(binary)) {
    throw new Error(`no server binary at ${binary}: run \`cargo build\` first or set TAX_BUDGET_BIN`);
  }
  return binary;
}

const webDir = path.join(WEB, 'dist');

export class Server {
  private process: ChildProcess | null = null;
  url = '';

  private constructor(
    private readonly dataDir: string,
    private bind: string,
    private readonly flags: string[],
  ) {}

  /** A server on a random port with a fresh SQLite database of its own; `flags` go to `serve`. */
  static async start(flags: string[] = []): Promise<Server> {
    if (!existsSync(path.join(webDir, 'index.html'))) {
      throw new Error(`the web app is not built in ${webDir}: run \`npm run build\` first`);
    }
    const server = new Server(await mkdtemp(path.join(tmpdir(), 'tax-budget-e2e-')), '127.0.0.1:0', flags);
    await server.launch();
    return server;
  }

  /** Starts the process; after a `stop()` it comes back on the same port and database. */
  async launch(): Promise<void> {
    const child = spawn(
      serverBinary(),
      [
        'serve',
        '--bind',
        this.bind,
        '--database-url',
        path.join(this.dataDir, 'e2e.sqlite3'),
        '--web-dir',
        webDir,
        ...this.flags,
      ],
      { env: { ...process.env, RUST_LOG: process.env.E2E_SERVER_LOG ?? 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    this.process = child;
    this.url = await new Promise<string>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error(`server did not start in time: ${output}`)), 60_000);
      child.stdout?.setEncoding('utf8');
      child.stdout?.on('data', (chunk: string) => {
        output += chunk;
        const match = /listening on (http:\/\/[^/\s]+)\//.exec(output);
        if (match?.[1]) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code}: ${output}`));
      });
    });
    // Come back on the same address after a restart, as a real deployment would.
    this.bind = new URL(this.url).host;
  }

  /** Stops the process (graceful shutdown, as on a deploy). */
  async stop(): Promise<void> {
    const child = this.process;
    this.process = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  /** A GraphQL request from another client (not the browser). */
  async graphql<T>(query: string, variables: Record<string, unknown> = {}, token?: string): Promise<T> {
    const response = await fetch(`${this.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data?: T; errors?: unknown[] };
    if (body.errors?.length || !body.data) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
    return body.data;
  }

  /** Submits percentages in display order through the API (missing ones are 0); returns the id. */
  async submit(percentages: number[]): Promise<string> {
    const { categories } = await this.graphql<{ categories: { id: string }[] }>('{ categories { id } }');
    const data = await this.graphql<{ submitAllocation: { submission: { id: string } } }>(
      'mutation($input: SubmitAllocationInput!) { submitAllocation(input: $input) { submission { id } } }',
      { input: { allocations: categories.map((c, i) => ({ categoryId: c.id, percentage: percentages[i] ?? 0 })) } },
    );
    return data.submitAllocation.submission.id;
  }
}

/** A page in a new context of `browser`, waiting up to the deadline for anything it is asked. */
export async function openPage(
  browser: Browser,
  options: BrowserContextOptions = LAPTOP,
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.setDefaultTimeout(DEADLINE_MS);
  return { context, page };
}

/** Two animation frames: whatever changed has been laid out and painted. */
export function settled(page: Page): Promise<void> {
  return page.evaluate(
    () => new Promise<void>((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve()))),
  );
}

/** Debian's Chromium, launched as this machine's closed network needs. */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Saves a full-page screenshot as a test artefact; returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  const dir = path.join(ARTIFACTS, 'screenshots');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  // A window as tall as the page shows sticky parts (the allocate page's total) where they
  // rest, not stamped over the rows as a stitched full-page capture does.
  const viewport = page.viewportSize();
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  if (viewport) await page.setViewportSize({ width: viewport.width, height: Math.max(viewport.height, height) });
  await page.screenshot({ path: file });
  if (viewport) await page.setViewportSize(viewport);
  return file;
}
