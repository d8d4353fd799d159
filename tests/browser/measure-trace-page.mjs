// Measures how long a large trace page takes in headless Chromium: uploads a
// generated trace of N spans (10 attributes each; span i's parent is span
// (i+1)/2, a binary tree) to a running phosphor, in requests of 5,000 spans,
// under a fresh random trace ID (so runs never collide), then:
// - fetches the page RUNS times with plain HTTP: bytes and server time;
// - loads it RUNS times in Chromium, timing the `load` event and the first
//   paint after scrolling to the bottom of the page, end to end (server
//   included) and again with the HTML already in hand (browser only);
// - loads it RUNS more times with Chromium's tracing on, and adds up the
//   CPU time of the page's main thread (parsing, style, layout, paint,
//   script): unlike the times above, it hardly depends on how busy the
//   machine is.
// Prints one JSON line per run and a line of medians.
//
// Usage: node measure-trace-page.mjs BASE_URL [SPANS] [RUNS]   (see BENCHMARKS.md)
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";

const base = process.argv[2];
const n = Number(process.argv[3] || 10000);
const runs = Number(process.argv[4] || 5);
const traceId = Array.from({ length: 32 }, () => "0123456789abcdef"[Math.floor(Math.random() * 16)]).join("");
const t0 = BigInt(Date.now()) * 1000000n;
const chunk = 5000;
for (let from = 0; from < n; from += chunk) {
  const spans = [];
  for (let i = from; i < Math.min(n, from + chunk); i++) {
    const s = {
      traceId, spanId: (i + 1).toString(16).padStart(16, "0"), name: `op-${i % 37}`,
      kind: i === 0 ? 2 : 3,
      startTimeUnixNano: String(t0 + BigInt(i) * 1000n),
      endTimeUnixNano: String(t0 + BigInt(i) * 1000n + 50000n),
      attributes: Array.from({ length: 10 }, (_, j) => ({ key: `k${j}`, value: { stringValue: `value-${i}-${j}` } })),
    };
    if (i > 0) s.parentSpanId = Math.floor((i + 1) / 2).toString(16).padStart(16, "0");
    spans.push(s);
  }
  const body = JSON.stringify({ resourceSpans: [{ resource: { attributes: [{ key: "service.name", value: { stringValue: "big" } }] }, scopeSpans: [{ spans }] }] });
  const up = await fetch(`${base}/api/v1/upload`, { method: "POST", headers: { "content-type": "application/json" }, body });
  if (!up.ok) throw new Error(`upload failed: ${up.status} ${await up.text()}`);
}
const url = `${base}/traces/${traceId}`;
// Wait until every span is stored (ingest is asynchronous).
for (let i = 0; ; i++) {
  const r = await fetch(`${base}/api/v1/search?service=big&lookback=1h&limit=500`);
  const hit = (await r.json()).data.find((t) => t.traceId === traceId);
  if (hit && hit.spanCount >= n) break;
  if (i > 600) throw new Error("the trace was not stored in time");
  await new Promise((r) => setTimeout(r, 100));
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; };
const results = [];
let html = "";
for (let i = 0; i < runs; i++) {
  const t = performance.now();
  const resp = await fetch(url);
  html = await resp.text();
  results.push({ server_ms: Math.round(performance.now() - t), bytes: Buffer.byteLength(html) });
}

const browser = await chromium.launch({
  executablePath: process.env.PHOSPHOR_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
page.on("pageerror", (e) => { throw e; });
await page.goto(`${base}/search`); // static assets in the cache, as for someone already using phosphor
const load = async () => {
  const t = Date.now();
  await page.goto(url, { waitUntil: "load", timeout: 120000 });
  const loaded = Date.now() - t;
  await page.evaluate(() => new Promise((r) => { window.scrollTo(0, document.body.scrollHeight); requestAnimationFrame(() => requestAnimationFrame(r)); }));
  return [loaded, Date.now() - t];
};
for (const r of results) [r.loaded_ms, r.scrolled_ms] = await load();
await page.route(url, (r) => r.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: html }));
for (const r of results) [r.browser_loaded_ms, r.browser_scrolled_ms] = await load();
const tracePath = `${os.tmpdir()}/phosphor-trace-page-${process.pid}.json`;
for (const r of results) {
  await browser.startTracing(page, { path: tracePath, categories: ["devtools.timeline", "toplevel"] });
  await load();
  await browser.stopTracing();
  const events = JSON.parse(fs.readFileSync(tracePath)).traceEvents;
  const main = new Set(events.filter((e) => e.ph === "M" && e.name === "thread_name" && e.args.name === "CrRendererMain").map((e) => `${e.pid}:${e.tid}`));
  const cpu = (name) => events.filter((e) => e.ph === "X" && e.name === name && main.has(`${e.pid}:${e.tid}`)).reduce((a, e) => a + (e.tdur || 0), 0) / 1000;
  r.main_thread_cpu_ms = Math.round(cpu("ThreadControllerImpl::RunTask") || cpu("RunTask"));
  r.parse_cpu_ms = Math.round(cpu("ParseHTML"));
}
fs.rmSync(tracePath, { force: true });
const rows = await page.$$eval(".waterfall .row", (r) => r.length);
const version = browser.version();
await browser.close();
for (const r of results) console.log(JSON.stringify({ spans: n, ...r }));
const keys = ["bytes", "server_ms", "loaded_ms", "scrolled_ms", "browser_loaded_ms", "browser_scrolled_ms", "main_thread_cpu_ms", "parse_cpu_ms"];
console.log(JSON.stringify({ spans: n, runs, rows, chromium: version, load_average: os.loadavg().map((l) => l.toFixed(2)).join(" "),
  median: Object.fromEntries(keys.map((k) => [k, median(results.map((r) => r[k]))])) }));
