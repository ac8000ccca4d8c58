// lumen serve's web app in headless Chromium, timed (issue 19): the first thumbnail on screen
// after navigation, frame times while the grid scrolls through the whole timeline, and (with
// BOTTOM=1) whether the last asset of the timeline can be reached and shown.
//
//   node bench/serve_browser_bench.js PLAYWRIGHT_DIR URL_WITH_TOKEN [step_px=1500] [bottom=0]
// Prints one JSON line.
'use strict';

const [pw, url, stepArg, bottomArg] = process.argv.slice(2);
const { chromium } = require(pw);
const step = Number(stepArg || 1500);

(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(url);  // sets the cookie
  await page.addInitScript(() => {
    window.__first = 0;
    document.addEventListener('load', (e) => {
      if (!window.__first && e.target.tagName === 'IMG' && e.target.naturalWidth > 0) window.__first = performance.now();
    }, true);
  });
  const runs = [];
  for (let i = 0; i < 5; ++i) {
    await page.goto(new URL('/', url).href);
    await page.waitForFunction(() => window.__first > 0, null, { timeout: 30000 });
    runs.push(await page.evaluate(() => window.__first));
  }
  runs.sort((a, b) => a - b);
  const total = await page.evaluate(async () => (await (await fetch('/api/v1/info')).json()).assets);
  // Scroll the whole timeline, one step per frame, timing the frames.
  const frames = await page.evaluate(async (step) => {
    const s = document.getElementById('scroller');
    const deltas = [];
    let last = performance.now();
    await new Promise((done) => {
      const tick = (t) => {
        deltas.push(t - last);
        last = t;
        s.scrollTop += step;
        if (s.scrollTop + s.clientHeight >= s.scrollHeight - 1) return done();
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });
    return deltas.slice(1);
  }, step);
  frames.sort((a, b) => a - b);
  const q = (p) => frames[Math.min(frames.length - 1, Math.floor(p * frames.length))];
  const out = {
    assets: total,
    first_thumbnail_ms: { min: runs[0], median: runs[2], max: runs[4] },
    scroll: { frames: frames.length, step_px: step, p50_ms: q(0.5), p95_ms: q(0.95), max_ms: frames[frames.length - 1] },
  };
  if (bottomArg === '1') {
    // The bottom: the last asset's cell exists and its id arrives.
    await page.waitForFunction((n) => {
      const c = document.querySelector(`#layer .cell[data-index="${n - 1}"]`);
      return c && c.dataset.id;
    }, total, { timeout: 30000 });
    out.bottom_reached = true;
  }
  console.log(JSON.stringify(out));
  await browser.close();
})().catch((e) => {
  console.error(String(e && e.stack || e));
  process.exit(1);
});
