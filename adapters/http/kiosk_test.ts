/// <reference lib="dom" />
/**
 * The kiosk page in a real headless browser (Debian's chromium driven by puppeteer-core): ask a
 * question, see the answer stream in, stop a long answer (its slot is freed), start a new
 * conversation, at 800x480 (the Pi touch display) and 1920x1080. Screenshots are written to a
 * temporary directory and their paths printed. Skipped, saying so, when chromium is missing.
 */
import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { withServer } from "../../test/http_server.ts";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});
if (!CHROMIUM) console.log("kiosk page browser test: skipped: no chromium (apt-get install chromium)");

const opts = { sanitizeResources: false, sanitizeOps: false, ignore: !CHROMIUM };

async function withBrowser(body: (browser: Browser, shots: string) => Promise<void>): Promise<void> {
  const profile = await Deno.makeTempDir({ prefix: "bonsai-chromium-" });
  const shots = await Deno.makeTempDir({ prefix: "bonsai-kiosk-shots-" });
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // A page that stops answering fails the test in a minute, not after puppeteer's 3 minutes per call.
    protocolTimeout: 60_000,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
    ],
  });
  try {
    await body(browser, shots);
  } finally {
    await browser.close();
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

async function shoot(page: Page, shots: string, name: string): Promise<void> {
  const path = `${shots}/${name}.png`;
  await page.screenshot({ path });
  console.log(`screenshot: ${path}`);
}

/** The last assistant bubble's state and text. */
function lastAnswer(page: Page): Promise<{ state: string; text: string } | null> {
  return page.evaluate(() => {
    const all = document.querySelectorAll<HTMLElement>(".msg.assistant, .msg.error");
    const last = all[all.length - 1];
    return last ? { state: last.dataset.state ?? "", text: last.textContent ?? "" } : null;
  });
}

async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  while (true) {
    const v = await f();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(v)})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("kiosk page at 800x480: a question streams an answer, tok/s and model shown", opts, async () => {
  await withBrowser(async (browser, shots) => {
    await withServer({ scheduler: { maxTokens: 24 }, http: { kioskSystem: "You are the lobby kiosk." } }, async (s) => {
      const page = await browser.newPage();
      await page.setViewport({ width: 800, height: 480 });
      const bodies: string[] = [];
      page.on("request", (r) => {
        if (r.url().endsWith("/v1/chat/completions")) bodies.push(r.postData() ?? "");
      });
      await page.goto(s.server.url + "/", { waitUntil: "load" });
      assert.equal(await page.$eval("#model", (e) => e.textContent), "tiny");
      // Touch-sized controls and no sideways scrolling on the small display.
      const layout = await page.evaluate(() => ({
        width: document.documentElement.scrollWidth,
        send: document.getElementById("send")!.getBoundingClientRect().height,
        input: document.getElementById("input")!.getBoundingClientRect().bottom,
      }));
      assert.ok(layout.width <= 800, `page is ${layout.width} px wide`);
      assert.ok(layout.send >= 44, `send button ${layout.send} px high`);
      assert.ok(layout.input <= 480, "the input is on screen");

      await page.type("#input", "Where is the exit?");
      await page.click("#send");
      const answer = await until(() => lastAnswer(page), (a) => a?.state === "done", 20_000, "the answer");
      assert.ok(answer!.text.length > 0);
      const speed = await page.$eval("#speed", (e) => e.textContent ?? "");
      assert.match(speed, /^\d+(\.\d+)? tok\/s$/);
      await shoot(page, shots, "kiosk-800x480-answer");
      const sent = JSON.parse(bodies[0]);
      assert.equal(sent.stream, true);
      assert.deepEqual(sent.messages[0], { role: "system", content: "You are the lobby kiosk." });
      assert.deepEqual(sent.messages[1], { role: "user", content: "Where is the exit?" });

      // The second question carries the conversation; "new conversation" clears it.
      await page.type("#input", "And the lift?");
      await page.keyboard.press("Enter");
      await until(() => page.$$eval(".msg.assistant", (e) => e.length), (n) => n === 2, 5000, "a second answer");
      await until(() => lastAnswer(page), (a) => a?.state === "done", 20_000, "the second answer");
      assert.equal(JSON.parse(bodies[1]).messages.length, 4);
      await page.click("#new");
      assert.equal(await page.$$eval(".msg", (e) => e.length), 0);
      await page.type("#input", "Hello");
      await page.click("#send");
      await until(() => lastAnswer(page), (a) => a?.state === "done", 20_000, "the answer after new");
      assert.equal(JSON.parse(bodies[2]).messages.length, 2);
      assert.equal(s.server.metrics.snapshot().requests.served, 3);

      await page.setViewport({ width: 1920, height: 1080 });
      assert.ok(await page.evaluate(() => document.documentElement.scrollWidth) <= 1920);
      await shoot(page, shots, "kiosk-1920x1080");
    });
  });
});

Deno.test("kiosk page: the stop button stops a long answer and frees its slot", opts, async () => {
  await withBrowser(async (browser, shots) => {
    // A sliding context: the answer goes on until stopped.
    await withServer({ scheduler: { parallel: 1, overflow: "slide", maxTokens: 100_000 } }, async (s) => {
      const page = await browser.newPage();
      await page.setViewport({ width: 800, height: 480 });
      await page.goto(s.server.url + "/", { waitUntil: "load" });
      await page.type("#input", "Tell me everything");
      await page.click("#send");
      // Streamed: text is there while the answer is still running.
      const partial = await until(() => lastAnswer(page), (a) => (a?.text.length ?? 0) > 20, 20_000, "streamed text");
      assert.equal(partial!.state, "streaming");
      assert.equal(await page.$eval("#stop", (e) => (e as HTMLElement).hidden), false);
      assert.equal(await page.$eval("#send", (e) => (e as HTMLElement).hidden), true);
      await shoot(page, shots, "kiosk-800x480-streaming");
      await page.click("#stop");
      await until(() => lastAnswer(page), (a) => a?.state === "stopped", 5000, "the stopped state");
      await until(() => Promise.resolve(s.scheduler.activeCount), (n) => n === 0, 5000, "the slot to be freed");
      await until(
        () => Promise.resolve(s.server.metrics.snapshot().requests.cancelled),
        (n) => n === 1,
        5000,
        "the cancel",
      );
      assert.equal(await page.$eval("#send", (e) => (e as HTMLElement).hidden), false);
      await shoot(page, shots, "kiosk-800x480-stopped");
    });
  });
});
