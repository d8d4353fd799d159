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

// Open and show the span a search matched.
const highlighted = document.querySelector(".row.highlight");
if (highlighted) {
  highlighted.open = true;
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
