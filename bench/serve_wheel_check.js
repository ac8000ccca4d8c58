'use strict';
// Past the browser's height cap (a 1M timeline), a wheel notch moves the grid by its own delta:
// prints the virtual positions after five 100 px wheel steps from the top and one from the middle.
//   node bench/serve_wheel_check.js PLAYWRIGHT_CORE_DIR URL
const [pw, url] = process.argv.slice(2);
const { chromium } = require(pw);
(async () => {
  const b = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const p = await b.newPage({ viewport: { width: 1280, height: 800 } });
  await p.goto(url);
  await p.waitForFunction(() => grid.source && grid.source.total > 0);
  await p.waitForTimeout(500);
  const info = await p.evaluate(() => ({ h: grid.height, sp: grid.spacerHeight }));
  await p.mouse.move(600, 400);
  const tops = [];
  for (let i = 0; i < 5; ++i) { await p.mouse.wheel(0, 100); await p.waitForTimeout(150); tops.push(await p.evaluate(() => grid.virtualTop())); }
  // A jump by the scroll bar, then the wheel again.
  await p.evaluate(() => { scroller.scrollTop = scroller.scrollHeight / 2; });
  await p.waitForTimeout(200);
  const mid = await p.evaluate(() => grid.virtualTop());
  await p.mouse.wheel(0, 100); await p.waitForTimeout(150);
  const mid2 = await p.evaluate(() => grid.virtualTop());
  const ids = await p.$$eval('#layer .cell[data-id]', (cs) => cs.length);
  console.log(JSON.stringify({ info, tops, mid, mid2, d: mid2 - mid, ids }));
  await b.close();
})();
