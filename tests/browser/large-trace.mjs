// A trace over the row budget in a real browser: one root ("checkout"), a
// hundred shards under it ("shard-0".."shard-99"), a hundred items under
// each ("item-K-J", attribute order.id=order-K-J), 10,101 spans; items
// 3-50 and 6-7 failed. Checks that the
// page says what it hides and how much, that hidden parts load in place
// with the right rows (by mouse and by keyboard), that find reaches spans
// not on the page, that a link to a hidden span shows it, and that all of
// it reads without JavaScript too.
//
// Then, given a second trace of the same shape with a thousand items a shard
// (100,101 spans; item 42-420 failed), that it opens, accounts for every
// span, and opens a collapsed shard with its rows.
//
// Usage: node large-trace.mjs BASE_URL SCREENSHOT_DIR TRACE_ID SPAN_ID_OF_ITEM_5_77 [HUGE_TRACE_ID]
// Exits non-zero on the first failed check; prints a JSON summary.
import { chromium } from "playwright-core";
import { contrasts } from "./a11y.mjs";

const [base, shots, traceId, item577, hugeId] = process.argv.slice(2);
const checks = [];
function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
  checks.push(what);
}
let TOTAL = 10101;
let ITEMS = 100;
const number = (s) => Number(s.replace(/,/g, ""));

const browser = await chromium.launch({
  executablePath: process.env.PHOSPHOR_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

// What the waterfall shows: each row's name, depth, and what it says it hides.
const rowsOf = (page) => page.$$eval(".waterfall .rows > .row", (rs) => rs.map((r) => ({
  id: r.id,
  gap: r.classList.contains("gap"),
  collapsed: r.classList.contains("collapsed"),
  hidden: r.hidden,
  depth: Number(r.style.getPropertyValue("--d")),
  name: r.querySelector(".op")?.textContent || "",
  more: r.querySelector("a.more")?.textContent || "",
})));

// Every span is on the page or counted by exactly one row that hides it.
function account(rows, what) {
  const shown = rows.filter((r) => !r.gap).length;
  let hidden = 0;
  for (const r of rows) {
    if (r.collapsed) {
      const m = r.more.match(/^show ([\d,]+) spans? below/);
      check(m && /^shard-\d+$/.test(r.name) && number(m[1]) === ITEMS, `${what}: collapsed ${r.name} says it holds its ${ITEMS} spans ("${r.more}")`);
      hidden += number(m[1]);
    } else if (r.gap) {
      const m = r.more.match(/^show ([\d,]+) more calls? with ([\d,]+) spans?/);
      check(m && m[1] === m[2], `${what}: a run of hidden calls says how many (and items have no children): "${r.more}"`);
      hidden += number(m[2]);
    }
  }
  check(shown + hidden === TOTAL, `${what}: ${shown} spans shown + ${hidden} counted in hidden rows = ${TOTAL}`);
  return { shown, hidden };
}

// The rows under shard K, in order, must be item-K-0 .. item-K-(ITEMS-1).
function itemsOf(rows, k) {
  const at = rows.findIndex((r) => r.name === `shard-${k}`);
  const out = [];
  for (let i = at + 1; i < rows.length && rows[i].depth > 1; i++) out.push(rows[i]);
  return out;
}
const complete = (items, k) => items.length === ITEMS && items.every((r, j) => !r.gap && r.name === `item-${k}-${j}`);
const last = () => ITEMS - 1;

try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(90000); // a busy machine is slow, not wrong
  page.on("pageerror", (e) => { throw e; });
  await page.goto(`${base}/traces/${traceId}`);
  const url = page.url();

  // 1. The header describes the whole trace; the page says what it shows.
  const header = await page.textContent(".trace-header");
  check(/Spans\s*10,101 \(depth 3\)/.test(header), "the header counts every span of the trace and its depth");
  check(/Errors\s*⚠ 2/.test(header), "the header counts both failed spans, though they are deep");
  let rows = await rowsOf(page);
  const { shown } = account(rows, "the first page");
  check(shown <= 2100, `the page stays within the row budget (${shown} spans)`);
  const top = rows.filter((r) => r.depth <= 1 && !r.gap).map((r) => r.name);
  check(top.length === 101 && top[0] === "checkout" && top.slice(1).every((n, k) => n === `shard-${k}`), "the top of the tree is all there: the root and its 100 shards, in order");
  const notice = await page.textContent("#partial");
  check(notice.includes(`${shown.toLocaleString("en-US")} of its 10,101 spans are shown`), "the page says how many spans it shows");
  check(rows.some((r) => r.collapsed) && rows.some((r) => r.gap), "some subtrees are collapsed and some runs of calls hidden");
  check(rows.some((r) => r.name === "item-3-50") && rows.some((r) => r.name === "item-6-7"), "failed spans are shown, however deep");
  check(await page.$eval(".minimap svg path.mm-err", (p) => p.getAttribute("d").length > 0), "the minimap marks errors from the whole trace");
  await page.screenshot({ path: `${shots}/large-budget.png`, fullPage: false });

  // 2. Open a collapsed shard with the mouse: its rows appear after it.
  const shardK = rows.find((r) => r.collapsed).name.slice(6);
  await page.click(`#${rows.find((r) => r.name === `shard-${shardK}`).id} button.toggle`);
  await page.waitForFunction(([k, j]) => Array.from(document.querySelectorAll(".waterfall .op")).some((o) => o.textContent === `item-${k}-${j}`), [shardK, last()]);
  rows = await rowsOf(page);
  check(complete(itemsOf(rows, shardK), shardK), `opening shard-${shardK} puts item-${shardK}-0 .. item-${shardK}-${last()} under it, in order`);
  account(rows, `after opening shard-${shardK}`);
  const toggle = await page.getAttribute(`#${rows.find((r) => r.name === `shard-${shardK}`).id} button.toggle`, "aria-expanded");
  check(toggle === "true", "its toggle now says it is expanded");

  // 3. A run of hidden calls: follow its link, the calls appear in its place.
  const gap = rows.find((r) => r.gap);
  const gapAt = rows.indexOf(gap);
  const before = rows[gapAt - 1].name;
  await page.click(".waterfall .row.gap a.more");
  await page.waitForFunction((n) => document.querySelectorAll(".waterfall .row.gap").length < n, rows.filter((r) => r.gap).length);
  rows = await rowsOf(page);
  account(rows, "after opening a run of calls");
  const [, k, j] = before.match(/^item-(\d)-(\d+)$/) || before.match(/^(shard)-(\d)$/) || [];
  const next = rows[rows.findIndex((r) => r.name === before) + 1];
  check(next && (k === "shard" ? next.name === `item-${j}-0` : next.name === `item-${k}-${Number(j) + 1}`), `the calls that were hidden after ${before} come next (${next && next.name})`);

  // 4. The page still answers: a click opens a span's details, collapsing
  // the root hides everything under it, and expanding shows it again.
  await page.click(`#${rows.find((r) => r.name === `item-${shardK}-3`).id} .op`);
  await page.waitForSelector(".waterfall .row .detail");
  const detail = await page.textContent(".waterfall .row .detail");
  check(/Span ID/.test(detail) && detail.includes(`order-${shardK}-3`), "clicking a loaded row opens its details, attributes included");
  await page.click(".waterfall .rows > .row:first-child button.toggle");
  check(await page.$$eval(".waterfall .rows > .row", (rs) => rs.filter((r) => !r.hidden).length) === 1, "collapsing the root hides every row under it");
  await page.click(".waterfall .rows > .row:first-child button.toggle");
  check(await page.$$eval(".waterfall .rows > .row", (rs) => rs.filter((r) => r.hidden).length) === 0, "expanding it shows them again");
  await page.screenshot({ path: `${shots}/large-expanded.png`, fullPage: false });

  // 5. The keyboard: a collapsed row's link is a tab stop with visible
  // focus; Enter loads it; → on a collapsed row loads it too.
  const collapsed = (await rowsOf(page)).filter((r) => r.collapsed);
  check(collapsed.length >= 2, `at least two shards still collapsed (${collapsed.length})`);
  await page.keyboard.press("Escape");
  await page.evaluate((id) => { const r = document.getElementById(id); r.tabIndex = -1; r.focus(); }, collapsed[0].id);
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => {
    const e = document.activeElement;
    const s = getComputedStyle(e);
    return { more: e.matches("a.more"), visible: e.matches(":focus-visible") && s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2 };
  });
  check(focused.more && focused.visible, "Tab reaches a collapsed row's link, with visible focus");
  await page.keyboard.press("Enter");
  const k1 = collapsed[0].name.slice(6);
  await page.waitForFunction(([k, j]) => Array.from(document.querySelectorAll(".waterfall .op")).some((o) => o.textContent === `item-${k}-${j}`), [k1, last()]);
  check(complete(itemsOf(await rowsOf(page), k1), k1), `Enter on the link loads shard-${k1}'s rows`);
  await page.evaluate((id) => { const r = document.getElementById(id); r.tabIndex = -1; r.focus(); }, collapsed[1].id);
  await page.keyboard.press("ArrowRight");
  const k2 = collapsed[1].name.slice(6);
  await page.waitForFunction(([k, j]) => Array.from(document.querySelectorAll(".waterfall .op")).some((o) => o.textContent === `item-${k}-${j}`), [k2, last()]);
  check(complete(itemsOf(await rowsOf(page), k2), k2), `→ on a collapsed row loads shard-${k2}'s rows`);
  await page.keyboard.press("j");
  check(await page.evaluate(() => document.activeElement.querySelector(".op")?.textContent) === `item-${k2}-0`, "j moves to the first loaded row");

  // 6. Find reaches spans that are not on the page: by attribute, on the
  // server, when Enter is pressed.
  await page.goto(url);
  await page.fill("#find", "order-8-12");
  check(/press Enter to search all 10,101 spans/.test(await page.textContent("#find-count")), "typing says find on the page covers only its rows, and offers the server");
  await Promise.all([page.waitForNavigation(), page.press("#find", "Enter")]);
  check(page.url().includes("find=order-8-12"), "Enter asks the server");
  const match = await page.$$eval(".waterfall .row.match", (rs) => rs.map((r) => r.querySelector(".op").textContent));
  check(match.length === 1 && match[0] === "item-8-12", `the server finds the span by its attribute and shows it (${match})`);
  check(/^1 span of the whole trace matches/.test(await page.textContent("#find-count")), "and says how many spans of the whole trace match");
  await page.screenshot({ path: `${shots}/large-find.png`, fullPage: false });

  // 7. A link to a hidden span (as search results give) shows and opens it.
  await page.goto(`${url}?span=${item577}`);
  await page.waitForSelector(".row.highlight .detail");
  check(await page.textContent(".row.highlight .op") === "item-5-77", "a link to a span deep in a collapsed part shows it, highlighted");
  check((await page.textContent(".row.highlight .detail")).includes("order-5-77"), "and opens its details");

  // 8. Light and dark: the new rows' text and links keep their contrast.
  for (const scheme of ["light", "dark"]) {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 }, colorScheme: scheme });
    const p = await ctx.newPage();
    p.setDefaultTimeout(90000); // a busy machine is slow, not wrong
    await p.goto(url);
    const c = await contrasts(p, [
      { name: "hidden-part links", selector: ".waterfall a.more", min: 4.5 },
      { name: "the notice", selector: "#partial", min: 4.5 },
      { name: "span names", selector: ".waterfall .op", min: 4.5 },
      { name: "error markers", selector: ".waterfall .err", min: 4.5 },
    ]);
    for (const x of c) check(x.count > 0 && x.ratio >= x.min, `${scheme}: ${x.name} contrast ${x.ratio}:1 >= ${x.min} (worst "${x.text}" ${x.fg} on ${x.bg})`);
    await p.screenshot({ path: `${shots}/large-${scheme}.png`, fullPage: false });
    await ctx.close();
  }

  // 9. Without JavaScript: the links open pages of the hidden parts, and
  // find works as a form.
  const nojs = await browser.newContext({ viewport: { width: 1400, height: 900 }, javaScriptEnabled: false });
  const p = await nojs.newPage();
  p.setDefaultTimeout(90000); // a busy machine is slow, not wrong
  await p.goto(url);
  const link = await p.$eval(".waterfall .row.collapsed a.more", (a) => ({ href: a.getAttribute("href"), name: a.closest(".row").querySelector(".op").textContent }));
  check(/\?under=\d+/.test(link.href), "without JavaScript a collapsed row links to a page of its subtree");
  await Promise.all([p.waitForNavigation(), p.click(".waterfall .row.collapsed a.more")]);
  const k3 = link.name.slice(6);
  const sub = await rowsOf(p);
  check(sub[0].name === link.name && complete(sub.slice(1), k3), `that page shows ${link.name} and its ${ITEMS} items`);
  check((await p.textContent(".notice")).includes(`the ${ITEMS} spans under worker: ${link.name}`), "and says which part of the trace it is");
  check(/Spans\s*10,101/.test(await p.textContent(".trace-header")), "its header still describes the whole trace");
  await p.goto(url);
  await p.fill("#find", "item-2-2");
  await Promise.all([p.waitForNavigation(), p.press("#find", "Enter")]);
  const found = await p.$$eval(".waterfall .row.match .op", (os) => os.map((o) => o.textContent));
  check(found.includes("item-2-2") && found.every((n) => n.includes("item-2-2")), `find works without JavaScript (${found.length} matches)`);
  await nojs.close();

  // 10. A hundred thousand spans.
  if (hugeId) {
    TOTAL = 100101;
    ITEMS = 1000;
    const t0 = Date.now();
    await page.goto(`${base}/traces/${hugeId}`, { timeout: 120000 });
    const opened = Date.now() - t0;
    check(/Spans\s*100,101 \(depth 3\)/.test(await page.textContent(".trace-header")), `a 100,101-span trace opens (in ${opened} ms, not a measurement) and its header counts every span`);
    rows = await rowsOf(page);
    const { shown: hugeShown } = account(rows, "the 100,101-span trace");
    check(hugeShown <= 2100, `it stays within the row budget (${hugeShown} spans)`);
    check(rows.some((r) => r.name === "item-42-420"), "the one failed span, deep in it, is shown");
    const closed = rows.find((r) => r.collapsed);
    const k = closed.name.slice(6);
    await page.click(`#${closed.id} button.toggle`);
    await page.waitForFunction(([k, j]) => Array.from(document.querySelectorAll(".waterfall .op")).some((o) => o.textContent === `item-${k}-${j}`), [k, last()]);
    check(complete(itemsOf(await rowsOf(page), k), k), `opening shard-${k} of it loads item-${k}-0 .. item-${k}-${last()}`);
    await page.click(`#${(await rowsOf(page)).find((r) => r.name === `item-${k}-500`).id} .op`);
    await page.waitForSelector(".waterfall .row .detail");
    check((await page.textContent(".waterfall .row .detail")).includes(`order-${k}-500`), "and the page answers a click: the span's details open");
    await page.screenshot({ path: `${shots}/huge-expanded.png`, fullPage: false });
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ screenshots: shots, checks }));
