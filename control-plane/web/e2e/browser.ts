import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";

export type { Browser, Page };

export const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const repoRoot = path.resolve(webDir, "../..");
/** Git-ignored; CI keeps it as the run's artifact. */
export const screensDir = path.join(repoRoot, "test-results", "screens");
export const chromiumPath = process.env.KILN_CHROMIUM ?? "/usr/bin/chromium";

/** Debian's Chromium, never a downloaded browser. Playwright gives every launch a fresh temporary profile. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
  });
}

/** Whether the browser tests can run here; in strict mode (CI) a missing Chromium is a failure, not a skip. */
export function chromiumAvailable(): boolean {
  if (existsSync(chromiumPath)) return true;
  const message = `Chromium not found at ${chromiumPath}: the dashboard's browser tests are SKIPPED. Install it with 'apt-get install -y chromium' (KILN_STRICT=1 does).`;
  if (process.env.KILN_STRICT === "1") throw new Error(`strict mode: ${message}`);
  console.warn(`\n!!! ${message} !!!\n`);
  return false;
}

/** Builds the dashboard into control-plane/web/dist, which `kiln server` serves. */
export function buildDashboard(): void {
  const vite = path.join(webDir, "node_modules/vite/bin/vite.js");
  const result = spawnSync(process.execPath, [vite, "build", "--logLevel", "warn"], { cwd: webDir, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`vite build failed:\n${result.stdout}\n${result.stderr}`);
}

/** Collects what a page logs as errors (console errors and uncaught exceptions). */
export function watchConsole(page: Page, errors: string[]): void {
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`${page.url()}: console.error: ${message.text()}`);
  });
  page.on("pageerror", (error) => errors.push(`${page.url()}: uncaught: ${error.message}`));
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(screensDir, { recursive: true });
  await page.screenshot({ path: path.join(screensDir, `${name}.png`) });
}
