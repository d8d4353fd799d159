// phosphor UI: small, dependency-free interaction on top of server-rendered
// pages (which read fine without it). Nothing here walks every row when a
// page loads: large traces stay quick to open.
"use strict";

const waterfall = document.querySelector(".waterfall");

// The waterfall's rows come in blocks (div.rows) that the browser can skip
// while off screen; these walk the rows across blocks, in page order.
function nextRow(r) {
  if (r.nextElementSibling) return r.nextElementSibling;
  const block = r.parentElement.nextElementSibling;
  return block && block.classList.contains("rows") ? block.firstElementChild : null;
}
function prevRow(r) {
  if (r.previousElementSibling) return r.previousElementSibling;
  const block = r.parentElement.previousElementSibling;
  return block && block.classList.contains("rows") ? block.lastElementChild : null;
}
const depthOf = (r) => Number(r.style.getPropertyValue("--d"));
const setToggle = (btn, open) => {
  btn.setAttribute("aria-expanded", String(open));
  btn.textContent = open ? "▾" : "▸";
};

// Collapse or expand a span's subtree (the rows already on the page).
function setExpanded(row, expand) {
  const btn = row.querySelector("button.toggle");
  if (!btn) return;
  setToggle(btn, expand);
  const depth = depthOf(row);
  for (let next = nextRow(row); next && depthOf(next) > depth; next = nextRow(next)) {
    next.hidden = !expand;
    const inner = expand && next.querySelector("button.toggle");
    if (inner && !next.querySelector("a.more")) setToggle(inner, true);
  }
}

// A hidden part of a large trace: fetch its rows and put them where the row
// that stood for them is. (Without JavaScript the link opens a page of it.)
const status = document.getElementById("find-count");
async function loadRows(link) {
  if (link.dataset.loading) return;
  link.dataset.loading = "1";
  const row = link.closest(".row");
  const resp = await fetch(link.dataset.rows);
  if (!resp.ok) {
    delete link.dataset.loading;
    if (status) status.textContent = "⚠ " + (await resp.text());
    return;
  }
  const html = await resp.text();
  // Split the block after the row, and put the new blocks in between.
  const block = row.parentElement;
  const tail = document.createElement("div");
  tail.className = "rows";
  while (row.nextSibling) tail.appendChild(row.nextSibling);
  tail.style.setProperty("--n", String(tail.childElementCount));
  block.style.setProperty("--n", String(block.childElementCount));
  if (tail.firstElementChild) block.after(tail);
  block.insertAdjacentHTML("afterend", html);
  if (row.classList.contains("gap")) {
    const first = nextRow(row);
    row.remove();
    if (!block.firstElementChild) block.remove();
    if (first && document.activeElement === document.body) focusRow(first);
  } else {
    link.remove();
    row.classList.remove("collapsed");
    const btn = row.querySelector("button.toggle");
    if (btn) setToggle(btn, true);
  }
}

document.addEventListener("click", (e) => {
  const more = e.target.closest(".waterfall a.more");
  if (more && !(e.metaKey || e.ctrlKey || e.shiftKey)) {
    e.preventDefault();
    loadRows(more);
    return;
  }
  const btn = e.target.closest(".waterfall button.toggle");
  if (btn) {
    e.preventDefault();
    e.stopPropagation();
    const row = btn.closest(".row");
    const hidden = row.querySelector("a.more");
    if (hidden) loadRows(hidden);
    else setExpanded(row, btn.getAttribute("aria-expanded") !== "true");
    return;
  }
  // Large traces: plain rows whose details are fetched when a row is
  // clicked (without JavaScript, the operation name links to the span's
  // own page).
  const row = e.target.closest(".waterfall div.row");
  if (!row || row.classList.contains("gap") || e.target.closest(".detail") || e.metaKey || e.ctrlKey || e.shiftKey) return;
  e.preventDefault();
  toggleDetail(row);
});

async function toggleDetail(row) {
  const open = row.querySelector(":scope > .detail");
  if (open) { open.remove(); return; }
  if (!row.id.startsWith("span-")) return;
  const resp = await fetch(`/traces/${waterfall.dataset.trace}/spans/${row.id.slice(5)}?fragment=1&v=${waterfall.dataset.version}`);
  if (resp.ok) row.insertAdjacentHTML("beforeend", await resp.text());
  else if (status) status.textContent = "⚠ " + (await resp.text());
}

// One row at a time is in the tab order (the one last focused; at first the
// first row): Tab reaches the waterfall, j / k move within it.
let current = null;
function focusRow(row) {
  const target = row.tagName === "DETAILS" ? row.querySelector("summary") : row;
  if (target.tagName === "DIV") {
    if (current && current !== target) current.tabIndex = -1;
    target.tabIndex = 0;
    current = target;
  }
  target.focus();
  return target;
}
if (waterfall) {
  const first = waterfall.querySelector(".rows > div.row");
  if (first) { first.tabIndex = 0; current = first; }
}

// Open and show the span a search matched, or the first match of a find.
const highlighted = document.querySelector(".row.highlight") || document.querySelector(".waterfall .row.match");
if (highlighted) {
  if (highlighted.classList.contains("highlight")) {
    if (highlighted instanceof HTMLDetailsElement) highlighted.open = true;
    else toggleDetail(highlighted);
  }
  highlighted.scrollIntoView({ block: "center" });
}

// Upload: send a trace file to /api/v1/upload and open what it held.
const uploadForm = document.getElementById("upload-form");
if (uploadForm) {
  uploadForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = document.getElementById("upload-status");
    const file = document.getElementById("upload-file").files[0];
    if (!file) return;
    status.textContent = "Uploading…";
    const resp = await fetch("/api/v1/upload", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: await file.text(),
    });
    const body = await resp.json().catch(() => ({}));
    if (resp.ok && body.traces && body.traces.length > 0) {
      window.location.href = "/traces/" + encodeURIComponent(body.traces[0]);
    } else {
      status.textContent = "⚠ " + ((body.error && body.error.message) || resp.statusText);
    }
  });
}

// Find in trace: as you type, mark the rows on the page whose text holds
// it and dim the rest. Small traces carry every span's details, so that is
// the whole search; on larger ones Enter asks the server, which searches
// every span's attributes too and shows the matches however deep.
const find = document.getElementById("find");
if (find && waterfall) {
  const server = waterfall.dataset.find === "server";
  find.addEventListener("input", () => {
    const q = find.value.trim().toLowerCase();
    let n = 0;
    for (const r of waterfall.getElementsByClassName("row")) {
      const hit = q !== "" && r.textContent.toLowerCase().includes(q);
      r.classList.toggle("match", hit);
      r.classList.toggle("dim", q !== "" && !hit);
      if (hit) n++;
    }
    const spans = `${n} span${n === 1 ? "" : "s"}`;
    status.textContent = q === "" ? "" : server
      ? `${spans} on the page match by name; press Enter to search all ${waterfall.dataset.spans} spans, attributes included`
      : `${spans} match`;
  });
  find.form.addEventListener("submit", (e) => { if (!server) e.preventDefault(); });
}

// Keyboard: j/k (and ↓/↑) move between rows, Enter opens, ← / → collapse
// and expand (loading a hidden subtree), / goes to Find.
const rowOf = (el) => el && el.closest && el.closest(".waterfall .row");
function visibleFrom(row, step) {
  let r = step(row);
  while (r && r.hidden) r = step(r);
  return r;
}
document.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement) {
    if (e.key === "Escape") e.target.blur();
    return;
  }
  if (!waterfall || e.altKey || e.ctrlKey || e.metaKey) return;
  const at = rowOf(document.activeElement);
  const down = e.key === "j" || (e.key === "ArrowDown" && at);
  const up = e.key === "k" || (e.key === "ArrowUp" && at);
  if (down || up) {
    const first = waterfall.querySelector(".rows > .row:not([hidden])");
    const next = at ? visibleFrom(at, down ? nextRow : prevRow) : first;
    if (next) focusRow(next);
    e.preventDefault();
  } else if (e.key === "Enter" && at && document.activeElement === at && at.tagName === "DIV") {
    const more = at.querySelector("a.more");
    if (at.classList.contains("gap") && more) loadRows(more); else toggleDetail(at);
    e.preventDefault();
  } else if ((e.key === "ArrowLeft" || e.key === "ArrowRight") && at) {
    const btn = at.querySelector("button.toggle");
    const more = at.querySelector("a.more");
    if (e.key === "ArrowRight" && more) loadRows(more);
    else if (btn && (btn.getAttribute("aria-expanded") === "true") === (e.key === "ArrowLeft")) setExpanded(at, e.key === "ArrowRight");
    e.preventDefault();
  } else if (e.key === "/" && find) {
    find.focus();
    e.preventDefault();
  }
});

// Minimap: the whole trace in small (drawn by the server); drag across it
// to zoom the waterfall to that stretch of time, double-click to see all of
// it again.
const minimap = document.querySelector(".minimap");
if (minimap && waterfall) {
  const win = document.getElementById("minimap-window");
  const totalUs = Number(waterfall.dataset.totalUs || 0);
  const human = (us) => us < 1000 ? `${us.toFixed(0)}µs` : us < 1e6 ? `${(us / 1000).toFixed(2)}ms` : `${(us / 1e6).toFixed(2)}s`;
  const zoom = (a, b) => {
    // a and b are fractions of the trace.
    waterfall.style.setProperty("--a", String(a * 100));
    waterfall.style.setProperty("--k", String(1 / Math.max(b - a, 0.0001)));
    win.style.left = `${a * 100}%`;
    win.style.width = `${(b - a) * 100}%`;
    waterfall.dataset.zoom = `${a.toFixed(4)}-${b.toFixed(4)}`;
    for (const tick of document.querySelectorAll(".wf-axis span[data-f]")) {
      tick.textContent = human((a + (b - a) * Number(tick.dataset.f) / 4) * totalUs);
    }
  };
  let start = null;
  const frac = (e) => Math.min(Math.max((e.clientX - minimap.getBoundingClientRect().left) / minimap.clientWidth, 0), 1);
  minimap.addEventListener("mousedown", (e) => { start = frac(e); e.preventDefault(); });
  window.addEventListener("mousemove", (e) => {
    if (start === null) return;
    const x = frac(e);
    win.style.left = `${Math.min(start, x) * 100}%`;
    win.style.width = `${Math.abs(x - start) * 100}%`;
  });
  window.addEventListener("mouseup", (e) => {
    if (start === null) return;
    const x = frac(e);
    const [a, b] = [Math.min(start, x), Math.max(start, x)];
    start = null;
    if (b - a > 0.005) zoom(a, b); else zoom(0, 1);
  });
  minimap.addEventListener("dblclick", () => zoom(0, 1));
}
