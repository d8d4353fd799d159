// The incident path in a real browser: search for errors, open a trace from
// the scatter plot, collapse and expand, open span detail, find the critical
// path, compare two traces, and watch the live view pick up a new trace.
//
// Usage: node incident.mjs BASE_URL SCREENSHOT_DIR
// Exits non-zero on the first failed check; prints a JSON summary.
import { chromium } from "playwright-core";
import { contrasts, focusWalk } from "./a11y.mjs";

const [base, shots, xssTrace, bigTrace] = process.argv.slice(2);
const executablePath = process.env.PHOSPHOR_CHROMIUM || "/usr/bin/chromium";
const checks = [];
function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
  checks.push(what);
}

const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
page.setDefaultTimeout(90000); // a busy machine is slow, not wrong
const cspViolations = [];
page.on("console", (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });
page.on("pageerror", (e) => { throw e; });

try {
  // 1. Errors in the last hour.
  await page.goto(`${base}/search?status=error&lookback=1h`);
  const heading = await page.textContent("h1");
  check(/^\d+ traces?$/.test(heading.trim()) && !heading.startsWith("0 "), `search found error traces (${heading.trim()})`);
  const rows = await page.$$eval("table.traces tbody tr", (trs) => trs.map((tr) => tr.className));
  check(rows.length > 0 && rows.every((c) => c.includes("has-error")), "every result row is marked as failed");
  check((await page.$$(".scatter a.dot.error")).length === rows.length, "one red dot per result in the scatter plot");
  await page.screenshot({ path: `${shots}/search.png`, fullPage: true });

  // 2. Open a trace from the scatter plot (the last dot drawn: no other dot
  // can lie on top of it).
  await Promise.all([page.waitForNavigation(), page.click(".scatter a.dot:last-of-type")]);
  check(page.url().includes("/traces/"), "a dot opens its trace");
  const spanRows = await page.$$(".waterfall .row");
  check(spanRows.length > 3, `the waterfall has rows (${spanRows.length})`);
  check((await page.$$(".row.error")).length > 0, "failed spans are marked");
  check((await page.$$(".row.critical")).length > 0, "the critical path is marked");
  await page.screenshot({ path: `${shots}/trace.png`, fullPage: true });

  // 3. Collapse the root's subtree, then expand it.
  const visible = () => page.$$eval(".waterfall .row", (rs) => rs.filter((r) => !r.hidden).length);
  const before = await visible();
  await page.click(".waterfall .row button.toggle");
  const collapsed = await visible();
  check(collapsed < before, `collapsing hides the subtree (${before} -> ${collapsed} rows)`);
  await page.click(".waterfall .row button.toggle");
  check((await visible()) === before, "expanding shows it again");

  // 3a. Zoom with the minimap: drag across its second half.
  const mm = await page.$(".minimap");
  const bb = await mm.boundingBox();
  await page.mouse.move(bb.x + bb.width * 0.5, bb.y + 10);
  await page.mouse.down();
  await page.mouse.move(bb.x + bb.width * 0.75, bb.y + 20);
  await page.mouse.up();
  const zoomState = await page.evaluate(() => {
    const w = document.querySelector(".waterfall");
    const track = document.querySelector(".waterfall .row .wf-track");
    // The bar is the track's ::before.
    return { zoom: w.dataset.zoom, k: Number(getComputedStyle(w).getPropertyValue("--k")), rootWidth: parseFloat(getComputedStyle(track, "::before").width), track: track.getBoundingClientRect().width };
  });
  check(zoomState.zoom && Math.abs(zoomState.k - 4) < 0.2, `dragging the minimap zooms the waterfall (${zoomState.zoom})`);
  check(zoomState.rootWidth > zoomState.track * 2, "a zoomed bar is wider than its track");
  await page.screenshot({ path: `${shots}/trace-zoomed.png`, fullPage: false });
  await page.dblclick(".minimap");
  check(await page.evaluate(() => document.querySelector(".waterfall").dataset.zoom === "0.0000-1.0000"), "double-click shows the whole trace again");

  // 3b. Find in trace, and the keyboard.
  await page.fill("#find", "cards");
  const matches = (await page.$$(".row.match")).length;
  check(matches >= 1 && (await page.textContent("#find-count")).startsWith(`${matches} span`), `find highlights ${matches} matching span(s)`);
  await page.fill("#find", "");
  await page.keyboard.press("Escape");
  await page.keyboard.press("j");
  await page.keyboard.press("j");
  const focused = await page.evaluate(() => {
    const all = Array.from(document.querySelectorAll(".waterfall .row > summary"));
    return all.indexOf(document.activeElement);
  });
  check(focused === 1, "j moves the focus down the waterfall");
  await page.keyboard.press("k");
  await page.keyboard.press("ArrowLeft");
  check((await visible()) < before, "left arrow collapses the focused span");
  await page.keyboard.press("ArrowRight");
  check((await visible()) === before, "right arrow expands it");

  // 4. Span detail of a failed span.
  await page.click(".row.error > summary .op");
  const detail = await page.textContent(".row.error[open] .detail");
  check(/Span ID/.test(detail) && /Duration/.test(detail), "span detail opens with its fields");
  await page.screenshot({ path: `${shots}/span-detail.png`, fullPage: false });

  // 5. Compare two traces.
  const ids = await page.evaluate(async () => {
    const r = await fetch("/api/v1/search?lookback=1h&limit=2");
    return (await r.json()).data.map((t) => t.traceId);
  });
  check(ids.length === 2, "two traces to compare");
  await page.goto(`${base}/compare?a=${ids[0]}&b=${ids[1]}`);
  check((await page.$$("table.compare tbody tr")).length > 3, "the comparison lists matched spans");
  await page.screenshot({ path: `${shots}/compare.png`, fullPage: true });

  // 6. The live view picks up a new trace by itself.
  await page.goto(`${base}/live`);
  const first = () => page.getAttribute("section[aria-labelledby=live-traces] tbody tr a", "href");
  const start = await first();
  let next = start;
  for (let i = 0; i < 30 && next === start; i++) {
    await page.waitForTimeout(500);
    try { next = await first(); } catch { /* mid-reload */ }
  }
  check(next && next !== start, "the live view shows a new trace without a click");
  await page.screenshot({ path: `${shots}/live.png`, fullPage: true });

  // 7. Services and dependencies.
  await page.goto(`${base}/services?lookback=1h`);
  check((await page.$$("section.service")).length >= 5, "services are listed with their operations");
  await page.screenshot({ path: `${shots}/services.png`, fullPage: true });
  await page.goto(`${base}/dependencies?lookback=1h`);
  check((await page.$$("svg.graph .edge")).length >= 5, "the dependency graph has edges");
  await page.screenshot({ path: `${shots}/dependencies.png`, fullPage: true });

  // 8. Names and attributes holding markup and script are shown, never run.
  if (xssTrace) {
    await page.goto(`${base}/traces/${xssTrace}`);
    await page.click(".waterfall .row > summary .op");
    const text = await page.textContent(".waterfall");
    check(text.includes("<script>window.__xss=1</script>") && text.includes("<img src=x onerror="), "markup in span data shows as text");
    check(await page.evaluate(() => window.__xss === undefined), "no script from span data ran");
    await page.goto(`${base}/search?lookback=1h&service=%3Cb%3Eevil%3C%2Fb%3E`);
    check(await page.evaluate(() => window.__xss === undefined && document.querySelectorAll("b").length === 0), "markup in a search query is not rendered");
  }

  // 9. A large trace: plain rows, details fetched when a row is clicked.
  if (bigTrace) {
    await page.goto(`${base}/traces/${bigTrace}`);
    check((await page.$$(".waterfall div.row")).length === 1200, "a 1,200-span trace renders every row");
    await page.click(".waterfall .rows > div.row:nth-of-type(3) .op");
    await page.waitForSelector(".waterfall .row .detail", { timeout: 10000 });
    check(/Span ID/.test(await page.textContent(".waterfall .row .detail")), "clicking a row of a large trace loads its details");
    await page.screenshot({ path: `${shots}/large-trace.png`, fullPage: false });
  }

  // 10. Light and dark: text contrast (WCAG AA, 4.5:1), errors marked by
  // more than colour, and keyboard focus that shows.
  const searchText = [
    { name: "heading", selector: "main h1", min: 4.5 },
    { name: "body text", selector: "table.traces td time, table.traces td:nth-child(3), .scatter figcaption", min: 4.5 },
    { name: "links", selector: "table.traces td a, table.traces th a, header.top nav a, header.top .brand", min: 4.5 },
    { name: "service chips", selector: "table.traces .chip", min: 4.5 },
    { name: "error markers", selector: "table.traces .err", min: 4.5 },
    { name: "form labels", selector: "form.search label", min: 4.5 },
    { name: "plot labels", selector: ".scatter .tick", min: 4.5 },
  ];
  const traceText = [
    { name: "header", selector: ".trace-header h1, .trace-header dd", min: 4.5 },
    { name: "header labels", selector: ".trace-header dt", min: 4.5 },
    { name: "links", selector: ".trace-header a, .critical-summary a", min: 4.5 },
    { name: "span names", selector: ".waterfall .op", min: 4.5 },
    { name: "service chips", selector: ".waterfall .chip", min: 4.5 },
    { name: "durations", selector: ".waterfall .wf-track", min: 4.5 },
    { name: "error markers", selector: ".waterfall .err, .trace-header .err", min: 4.5 },
    { name: "critical-path markers", selector: ".waterfall .crit, .trace-header .crit", min: 4.5 },
    { name: "tags", selector: ".waterfall .tag", min: 4.5 },
    { name: "axis and key hints", selector: ".wf-axis span, .find .keys", min: 4.5 },
  ];
  const report = {};
  for (const scheme of ["light", "dark"]) {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 }, colorScheme: scheme });
    const p = await ctx.newPage();
    p.setDefaultTimeout(90000); // a busy machine is slow, not wrong
    p.on("pageerror", (e) => { throw e; });
    await p.goto(`${base}/search?status=error&lookback=1h`);
    check(await p.evaluate((s) => matchMedia(`(prefers-color-scheme: ${s})`).matches, scheme), `${scheme}: the page sees the ${scheme} scheme`);
    const bodyBg = await p.evaluate(() => getComputedStyle(document.body).backgroundColor);
    check(scheme === "light" ? bodyBg === "rgb(255, 255, 255)" : bodyBg !== "rgb(255, 255, 255)", `${scheme}: the background follows the scheme (${bodyBg})`);
    const search = await contrasts(p, searchText);
    for (const c of search) check(c.count > 0 && c.ratio >= c.min, `${scheme} search: ${c.name} contrast ${c.ratio}:1 >= ${c.min} (${c.count} checked; worst "${c.text}" ${c.fg} on ${c.bg})`);
    const marked = await p.$$eval("table.traces tr.has-error", (trs) => trs.map((tr) => {
      const err = tr.querySelector(".err");
      return err && !err.closest("[aria-hidden=true]") && /⚠\s*\d+/.test(err.textContent);
    }));
    check(marked.length > 0 && marked.every(Boolean), `${scheme} search: each failed trace says so in text (⚠ and a count), not only in colour`);
    const dots = await p.$$eval(".scatter a.dot", (as) => as.map((a) => ({ error: a.classList.contains("error"), shape: a.firstElementChild.tagName, title: a.querySelector("title").textContent })));
    check(dots.every((d) => d.error === (d.shape === "path") && d.error === / errors?$/.test(d.title)), `${scheme} search: dots of failed traces differ in shape (diamonds) and in their titles`);
    await p.screenshot({ path: `${shots}/search-${scheme}.png`, fullPage: true });
    const focus = await focusWalk(p, 20);
    const unseen = focus.filter((f) => !f.visible);
    check(focus.length >= 15 && unseen.length === 0, `${scheme} search: focus is visible on the ${focus.length} controls Tab reaches${unseen.length ? " — not on " + JSON.stringify(unseen) : ""}`);

    await Promise.all([p.waitForNavigation(), p.click("table.traces td a")]);
    const trace = await contrasts(p, traceText);
    for (const c of trace) {
      if (c.count === 0 && ["tags"].includes(c.name)) continue; // not every trace has tags
      check(c.count > 0 && c.ratio >= c.min, `${scheme} trace: ${c.name} contrast ${c.ratio}:1 >= ${c.min} (${c.count} checked; worst "${c.text}" ${c.fg} on ${c.bg})`);
    }
    const errorsSaid = await p.$$eval(".waterfall .row.error", (rs) => rs.map((r) => /⚠ error/.test(r.querySelector(":scope > summary .err, :scope > .wf-label .err")?.textContent || "")));
    check(errorsSaid.length > 0 && errorsSaid.every(Boolean), `${scheme} trace: each failed span says "⚠ error" in text`);
    await p.screenshot({ path: `${shots}/trace-${scheme}.png`, fullPage: false });
    const traceFocus = await focusWalk(p, 30);
    const traceUnseen = traceFocus.filter((f) => !f.visible);
    check(traceFocus.some((f) => f.tag === "summary") && traceUnseen.length === 0, `${scheme} trace: focus is visible on the ${traceFocus.length} controls and rows Tab reaches${traceUnseen.length ? " — not on " + JSON.stringify(traceUnseen) : ""}`);
    report[scheme] = { search, trace };
    await ctx.close();
  }

  check(cspViolations.length === 0, "no Content-Security-Policy violations");
} finally {
  await browser.close();
}
console.log(JSON.stringify({ screenshots: shots, checks }));
