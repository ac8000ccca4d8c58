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
  // Where the last navigation's time went (ms after navigation start).
  const phases = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const res = performance.getEntriesByType('resource');
    const end = (re) => { const e = res.find((r) => re.test(r.name)); return e ? Math.round(e.responseEnd) : null; };
    return { html: Math.round(nav.responseEnd), script: end(/app\.js/), timeline: end(/timeline$/),
             slice: end(/timeline\/assets/), thumbnail: end(/thumbnail/), shown: Math.round(window.__first) };
  });
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
  // A reading pace (60 px a frame, 3,600 px/s) for 600 frames from the top: thumbnails load as
  // rows come in.
  await page.$eval('#scroller', (s) => { s.scrollTop = 0; });
  await page.waitForTimeout(500);
  const slow = await page.evaluate(async () => {
    const s = document.getElementById('scroller');
    const deltas = [];
    let last = performance.now(), loaded = 0;
    const count = (e) => { if (e.target.tagName === 'IMG') ++loaded; };
    document.addEventListener('load', count, true);
    await new Promise((done) => {
      const tick = (t) => {
        deltas.push(t - last);
        last = t;
        s.scrollTop += 60;
        if (deltas.length > 600) return done();
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });
    document.removeEventListener('load', count, true);
    const d = deltas.slice(1).sort((a, b) => a - b);
    return { frames: d.length, thumbnails_loaded: loaded, p50_ms: d[Math.floor(d.length / 2)], p95_ms: d[Math.floor(d.length * 0.95)] };
  });
  const q = (p) => frames[Math.min(frames.length - 1, Math.floor(p * frames.length))];
  const out = {
    assets: total,
    first_thumbnail_ms: { min: runs[0], median: runs[2], max: runs[4] },
    last_navigation_ms: phases,
    scroll: { frames: frames.length, step_px: step, p50_ms: q(0.5), p95_ms: q(0.95), max_ms: frames[frames.length - 1] },
    reading_pace: slow,
  };
  if (bottomArg === '1') {
    // The bottom: the last asset's cell exists and its id arrives.
    await page.$eval('#scroller', (s) => { s.scrollTop = s.scrollHeight; });
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
