// phosphor UI: small, dependency-free interaction on top of server-rendered
// pages (which read fine without it).
"use strict";

// Waterfall: collapse and expand a span's subtree.
document.addEventListener("click", (e) => {
  const btn = e.target.closest("button.toggle");
  if (!btn) return;
  e.preventDefault();
  e.stopPropagation();
  const row = btn.closest(".row");
  const depth = Number(row.dataset.depth);
  const collapse = btn.getAttribute("aria-expanded") === "true";
  btn.setAttribute("aria-expanded", String(!collapse));
  btn.textContent = collapse ? "▸" : "▾";
  for (let next = row.nextElementSibling; next && Number(next.dataset.depth) > depth; next = next.nextElementSibling) {
    next.hidden = collapse;
    const inner = next.querySelector("button.toggle");
    if (!collapse && inner) {
      inner.setAttribute("aria-expanded", "true");
      inner.textContent = "▾";
    }
  }
});

// Large traces: plain rows whose details are fetched when a row is clicked
// (without JavaScript, the operation name links to the span's own page).
async function toggleDetail(row) {
  const open = row.querySelector(":scope > .detail");
  if (open) { open.remove(); return; }
  const link = row.querySelector("a.op");
  if (!link) return;
  const resp = await fetch(link.href + "?fragment=1");
  if (resp.ok) row.insertAdjacentHTML("beforeend", await resp.text());
}
document.addEventListener("click", (e) => {
  const line = e.target.closest(".waterfall .row > .line");
  if (!line || e.target.closest("button.toggle") || e.metaKey || e.ctrlKey || e.shiftKey) return;
  e.preventDefault();
  toggleDetail(line.parentElement);
});

// Open and show the span a search matched.
const highlighted = document.querySelector(".row.highlight");
if (highlighted) {
  if (highlighted instanceof HTMLDetailsElement) highlighted.open = true;
  else toggleDetail(highlighted);
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

// Find in trace: highlight the spans whose name, service, attributes or
// events contain the text, dim the rest, and say how many.
const find = document.getElementById("find");
if (find) {
  const rows = Array.from(document.querySelectorAll(".waterfall .row"));
  const count = document.getElementById("find-count");
  find.addEventListener("input", () => {
    const q = find.value.trim().toLowerCase();
    let n = 0;
    for (const r of rows) {
      const hit = q !== "" && r.textContent.toLowerCase().includes(q);
      r.classList.toggle("match", hit);
      r.classList.toggle("dim", q !== "" && !hit);
      if (hit) n++;
    }
    count.textContent = q === "" ? "" : `${n} span${n === 1 ? "" : "s"} match`;
  });
}

// Keyboard: j/k move between rows, Enter opens (the browser's own), left and
// right collapse and expand, / goes to Find.
document.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement) {
    if (e.key === "Escape") e.target.blur();
    return;
  }
  const summaries = Array.from(document.querySelectorAll(".waterfall .row:not([hidden]) > summary, .waterfall .row:not([hidden]) > .line"));
  if (summaries.length === 0) return;
  const at = summaries.indexOf(document.activeElement);
  if (e.key === "j" || e.key === "k") {
    const next = e.key === "j" ? Math.min(at + 1, summaries.length - 1) : Math.max(at - 1, 0);
    summaries[at < 0 ? 0 : next].focus();
    e.preventDefault();
  } else if (e.key === "Enter" && at >= 0 && summaries[at].classList.contains("line")) {
    toggleDetail(summaries[at].parentElement);
    e.preventDefault();
  } else if ((e.key === "ArrowLeft" || e.key === "ArrowRight") && at >= 0) {
    const btn = summaries[at].querySelector("button.toggle");
    const expanded = btn && btn.getAttribute("aria-expanded") === "true";
    if (btn && expanded === (e.key === "ArrowLeft")) btn.click();
    e.preventDefault();
  } else if (e.key === "/" && find) {
    find.focus();
    e.preventDefault();
  }
});

// Minimap: the whole trace in small; drag across it to zoom the waterfall to
// that stretch of time, double-click to see all of it again.
const minimap = document.getElementById("minimap");
const waterfall = document.querySelector(".waterfall");
if (minimap && waterfall) {
  const box = minimap.parentElement;
  const win = document.getElementById("minimap-window");
  const tracks = Array.from(waterfall.querySelectorAll(".row .wf-track"));
  const totalUs = Number(waterfall.dataset.totalUs || 0);
  const draw = () => {
    minimap.width = minimap.clientWidth;
    const ctx = minimap.getContext("2d");
    const h = minimap.height;
    const rowH = Math.max(h / Math.max(tracks.length, 1), 0.5);
    tracks.forEach((t, i) => {
      const l = parseFloat(t.style.getPropertyValue("--l")) / 100;
      const w = Math.max(parseFloat(t.style.getPropertyValue("--w")) / 100, 0.002);
      ctx.fillStyle = t.closest(".row").classList.contains("error") ? "#c0172b" : "#3b82f6";
      ctx.fillRect(l * minimap.width, (i / tracks.length) * h, w * minimap.width, Math.max(rowH, 1));
    });
  };
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
  const frac = (e) => Math.min(Math.max((e.clientX - box.getBoundingClientRect().left) / box.clientWidth, 0), 1);
  box.addEventListener("mousedown", (e) => { start = frac(e); e.preventDefault(); });
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
  box.addEventListener("dblclick", () => zoom(0, 1));
  draw();
  window.addEventListener("resize", draw);
}
