// Measures how long a large trace page takes in headless Chromium: uploads a
// generated trace of N spans (10 attributes each) to a running phosphor,
// then loads its page three times, each time until loaded and until
// scrolled to the bottom and painted.
//
// Usage: node measure-trace-page.mjs BASE_URL [SPANS]   (see BENCHMARKS.md)
import { chromium } from "playwright-core";

const base = process.argv[2];
const n = Number(process.argv[3] || 10000);
const traceId = "ab".repeat(16);
const t0 = BigInt(Date.now()) * 1000000n;
const spans = [];
for (let i = 0; i < n; i++) {
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

const browser = await chromium.launch({
  executablePath: process.env.PHOSPHOR_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
for (let i = 0; i < 3; i++) {
  const t = Date.now();
  await page.goto(`${base}/traces/${traceId}`, { waitUntil: "load", timeout: 120000 });
  const loaded = Date.now() - t;
  await page.evaluate(() => new Promise((r) => { window.scrollTo(0, document.body.scrollHeight); requestAnimationFrame(() => requestAnimationFrame(r)); }));
  const scrolled = Date.now() - t;
  const rows = await page.$$eval(".waterfall .row", (r) => r.length);
  console.log(JSON.stringify({ spans: n, loaded_ms: loaded, scrolled_ms: scrolled, rows }));
}
await browser.close();
