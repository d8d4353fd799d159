// Accessibility measurements shared by the browser walks: WCAG contrast of
// text against what is really behind it, and whether keyboard focus is
// visible.

// WCAG 2 contrast ratio of each kind of text on the page: for every visible
// element matching `selector` (up to 30 of each), the colour of its text
// (SVG text: its fill) composited over the backgrounds of its ancestors, and
// the ratio of the two. Returns the worst of each kind.
export async function contrasts(page, targets) {
  return page.evaluate((targets) => {
    const parse = (c) => {
      let m = c.match(/^rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)$/);
      if (m) return [Number(m[1]), Number(m[2]), Number(m[3]), m[4] === undefined ? 1 : Number(m[4])];
      m = c.match(/^color\(srgb ([\d.e-]+) ([\d.e-]+) ([\d.e-]+)(?: \/ ([\d.]+))?\)$/);
      if (m) return [Number(m[1]) * 255, Number(m[2]) * 255, Number(m[3]) * 255, m[4] === undefined ? 1 : Number(m[4])];
      throw new Error("cannot read colour " + c);
    };
    const over = (top, under) => {
      const a = top[3];
      return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]);
    };
    const lum = (c) => {
      const [r, g, b] = c.slice(0, 3).map((v) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const ratio = (a, b) => {
      const [l1, l2] = [lum(a), lum(b)].sort((x, y) => y - x);
      return (l1 + 0.05) / (l2 + 0.05);
    };
    const background = (el) => {
      const layers = [];
      let opacity = 1;
      for (let e = el; e; e = e.parentElement) {
        const s = getComputedStyle(e);
        opacity *= Number(s.opacity);
        const bg = parse(s.backgroundColor);
        if (bg[3] > 0) layers.push(bg);
      }
      // The canvas behind everything takes the root's background.
      let bg = [255, 255, 255, 1];
      for (const l of layers.reverse()) bg = over(l, bg);
      return { bg, opacity };
    };
    const out = [];
    for (const { name, selector, min } of targets) {
      const els = Array.from(document.querySelectorAll(selector))
        .filter((e) => e.getClientRects().length > 0 && e.textContent.trim() !== "" && !e.closest(".dim, [hidden]"))
        .slice(0, 30);
      let worst = null;
      for (const e of els) {
        const s = getComputedStyle(e);
        const { bg, opacity } = background(e);
        const fgRaw = parse(e instanceof SVGElement ? s.fill : s.color);
        const fg = over([fgRaw[0], fgRaw[1], fgRaw[2], fgRaw[3] * opacity], bg);
        const r = ratio(fg, bg);
        if (!worst || r < worst.ratio) {
          worst = { ratio: Math.round(r * 100) / 100, fg: fg.slice(0, 3).map(Math.round).join(","), bg: bg.slice(0, 3).map(Math.round).join(","), text: e.textContent.trim().slice(0, 40) };
        }
      }
      out.push({ name, selector, min, count: els.length, ...worst });
    }
    return out;
  }, targets);
}

// Presses Tab `presses` times and reports, for each control reached, whether
// its focus is visible: `:focus-visible` matches and it has an outline of at
// least 2px (an SVG link: its shape's stroke of at least 2px).
export async function focusWalk(page, presses) {
  const seen = [];
  for (let i = 0; i < presses; i++) {
    await page.keyboard.press("Tab");
    seen.push(await page.evaluate(() => {
      const e = document.activeElement;
      if (!e || e === document.body) return null;
      const s = getComputedStyle(e);
      const svgShape = e instanceof SVGElement && e.querySelector("circle, path");
      const visible = e.matches(":focus-visible") && (svgShape
        ? parseFloat(getComputedStyle(svgShape).strokeWidth) >= 2
        : s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2);
      const label = (e.getAttribute("aria-label") || e.textContent || e.getAttribute("name") || e.id || "").trim().slice(0, 30);
      return { tag: e.tagName.toLowerCase(), label, visible, outline: `${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor}` };
    }));
  }
  return seen.filter(Boolean);
}
