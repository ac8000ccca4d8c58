// Drives lumen serve's web app in Debian's Chromium (playwright-core from npm, never a downloaded
// browser) and checks what a user sees: run by test_serve_browser.py, which builds the library
// and passes what to expect as JSON in LUMEN_BROWSER_TEST. Prints one JSON line of findings;
// exits 1 with the reason on the first check that fails.
'use strict';

const fs = require('fs');
const cfg = JSON.parse(process.env.LUMEN_BROWSER_TEST);
const { chromium } = require(cfg.playwright);

function check(ok, what) {
  if (!ok) throw new Error('check failed: ' + what);
}

async function waitFor(fn, what, timeout = 60000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main() {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const out = {};
  try {
    // The printed URL: the token becomes a cookie, the address bar loses it.
    await page.goto(cfg.url);
    check(!page.url().includes('token='), 'the token left the address bar');
    await page.waitForSelector('#layer .cell img');

    // The grid shows every asset: scroll through it, collecting the ids of the cells drawn.
    const scrollThrough = async () => {
      const seen = new Set();
      for (let y = 0; ; y += 300) {
        await page.$eval('#scroller', (s, y) => { s.scrollTop = y; }, y);
        await page.waitForTimeout(150);
        for (const id of await page.$$eval('#layer .cell', (cells) => cells.map((c) => c.dataset.id).filter(Boolean))) seen.add(Number(id));
        const atEnd = await page.$eval('#scroller', (s) => s.scrollTop + s.clientHeight >= s.scrollHeight - 1);
        if (atEnd) break;
      }
      return seen;
    };
    const seen = await scrollThrough();
    check(seen.size === cfg.total, `the grid showed ${seen.size} of ${cfg.total} assets`);
    out.grid_assets = seen.size;

    // Thumbnails on screen decode.
    await page.$eval('#scroller', (s) => { s.scrollTop = 0; });
    await waitFor(() => page.$$eval('#layer .cell img', (imgs) => imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0)), 'thumbnails to decode');
    out.thumbnails_decoded = await page.$$eval('#layer .cell img', (imgs) => imgs.filter((i) => i.naturalWidth > 0).length);

    // The viewer opens a photo with its details.
    await page.click('#layer .cell');
    await waitFor(() => page.$eval('#info', (e) => e.textContent.includes('Files')), 'the viewer details');
    await page.keyboard.press('Escape');
    check(await page.$eval('#viewer', (v) => v.hidden), 'Escape closes the viewer');

    // Text search finds the photo the CLI ranks first for the same words.
    await page.fill('#q', cfg.query);
    await page.click('#search button[type=submit]');
    await waitFor(() => page.$eval('#status', (s) => s.textContent.includes('results')), 'search results');
    await waitFor(() => page.$('#layer .cell[data-id]'), 'a result cell');
    const first = await page.$eval('#layer .cell[data-index="0"]', (c) => Number(c.dataset.id));
    check(first === cfg.expected_id, `search's first result is ${first}, the CLI's ${cfg.expected_id}`);
    out.search_first = first;

    // From the viewer, "Similar": photos that look like it, itself left out.
    await page.click('#layer .cell[data-index="0"]');
    await page.waitForSelector('#similar');
    await page.$eval('#status', (s) => { s.textContent = ''; });
    await page.click('#similar');
    await waitFor(() => page.$eval('#status', (s) => s.textContent.includes('results')), 'similar results');
    await waitFor(() => page.$('#layer .cell[data-index="0"][data-id]'), 'a similar cell');
    const similar = await page.$$eval('#layer .cell[data-id]', (cs) => cs.map((c) => Number(c.dataset.id)));
    const label = await page.$eval('#layer .month', (m) => m.textContent);
    check(similar.length > 0 && !similar.includes(first), `similar leaves the photo itself out: ${first} in ${similar} (${label})`);

    // A video hit opens at its moment: Similar from the photo that is the video's second shot.
    await page.click('#tabs button[data-tab=timeline]');
    await waitFor(() => page.$eval('#layer .month', (m) => !m.textContent.startsWith('Similar')), 'the timeline again');
    await waitFor(async () => {
      if (await page.$(`#layer .cell[data-id="${cfg.in_video_id}"] img`)) return true;
      await page.$eval('#scroller', (sc) => { sc.scrollTop += 200; });
      return false;
    }, 'the photo inside the video, in the timeline');
    await page.click(`#layer .cell[data-id="${cfg.in_video_id}"]`);
    await page.waitForSelector('#similar');
    await page.$eval('#status', (s) => { s.textContent = ''; });
    await page.click('#similar');
    await waitFor(() => page.$eval('#status', (s) => s.textContent.includes('results')), 'similar results for the photo');
    await waitFor(() => page.$('#layer .cell[data-index="0"][data-id]'), 'the first look-alike');
    const hit = await page.$eval('#layer .cell[data-index="0"]', (c) => ({ id: Number(c.dataset.id), t: c.dataset.t, video: c.classList.contains('v') }));
    check(hit.id === cfg.video_id && hit.video && hit.t, 'the video is the first look-alike, marked with its moment: ' + JSON.stringify(hit));
    await page.click('#layer .cell[data-index="0"]');
    await waitFor(() => page.$eval('#stage video', (v) => v.readyState >= 1 && v.currentTime > 0).catch(() => false), 'the video, seeked');
    out.video_opened_at = await page.$eval('#stage video', (v) => v.currentTime);
    await page.keyboard.press('Escape');

    // Grouped by day: a section per day (the server's buckets), every asset still shown.
    await page.click('#tabs button[data-tab=timeline]');
    await page.selectOption('#group', 'day');
    await waitFor(() => page.evaluate((n) => grid.source instanceof TimelineSource && grid.source.sections.length === n, cfg.days), `${cfg.days} day sections`);
    const byDay = await scrollThrough();
    check(byDay.size === cfg.total, `grouped by day, the grid showed ${byDay.size} of ${cfg.total} assets`);
    out.day_sections = await page.evaluate(() => grid.source.sections.length);
    await page.selectOption('#group', 'month');
    await waitFor(() => page.evaluate((n) => grid.source.sections.length === n, cfg.months), 'the month sections again');

    // The map: two clusters (Paris, Tokyo); the wheel zooms; a click on Tokyo shows its photo.
    await page.click('#tabs button[data-tab=map]');
    await waitFor(() => page.$eval('#mapnote', (n) => n.textContent.startsWith('2 of 2')), 'the map\'s two photos');
    const spots = await page.evaluate(() => mapView.spots.map((s) => ({ x: s.x, y: s.y, lon: mapView.data.lon[s.i] })));
    check(spots.length === 2, 'two clusters: ' + JSON.stringify(spots));
    const box = await page.$eval('#mapcanvas', (c) => { const r = c.getBoundingClientRect(); return { x: r.left, y: r.top }; });
    const tokyo = spots.find((s) => s.lon > 100);
    const before = await page.evaluate(() => mapView.box.east - mapView.box.west);
    await page.mouse.move(box.x + tokyo.x, box.y + tokyo.y);
    await page.mouse.wheel(0, -100);
    await waitFor(() => page.evaluate((w) => mapView.box.east - mapView.box.west < w && mapView.data && mapView.spots.length > 0, before), 'a zoom in');
    const after = await page.evaluate(() => mapView.spots.map((s) => ({ x: s.x, y: s.y, lon: mapView.data.lon[s.i] })).find((s) => s.lon > 100));
    check(after && Math.abs(after.x - tokyo.x) < 2 && Math.abs(after.y - tokyo.y) < 2, 'the point under the wheel stays put: ' + JSON.stringify([tokyo, after]));
    await page.mouse.click(box.x + after.x, box.y + after.y);
    await waitFor(() => page.$eval('#layer .month', (m) => m.textContent.startsWith('Near')).catch(() => false), 'the cluster\'s photos');
    await waitFor(() => page.$('#layer .cell[data-index="0"][data-id]'), 'the cluster\'s first photo');
    out.map_cluster_photos = await page.$$eval('#layer .cell[data-id]', (cs) => cs.map((c) => Number(c.dataset.id)));

    // Folders: the library's subfolders, and a folder's files as the grid.
    await page.click('#tabs button[data-tab=folders]');
    await waitFor(() => page.$$eval('#bar .sub', (s) => s.length >= 2), 'subfolders');
    const subs = await page.$$eval('#bar .sub', (s) => s.map((e) => e.textContent));
    check(subs.some((s) => s.startsWith('dupes ')), 'the dupes folder is listed: ' + subs);
    await page.click('#bar .sub >> text=/^dupes /');
    await waitFor(() => page.$$eval('#layer .cell img', (imgs, n) => imgs.length === n, cfg.dupes_folder_files), 'the folder\'s files');

    // Duplicates: groups side by side with the keeper chosen; quarantine the suggestion, check the
    // disk, undo from the page, check again.
    await page.click('#tabs button[data-tab=duplicates]');
    await waitFor(() => page.$$eval('#groups .group', (g) => g.length > 0), 'duplicate groups');
    const groups = await page.$$eval('#groups .group', (gs) => gs.map((g) => ({
      members: g.querySelectorAll('.member').length,
      kept: g.querySelectorAll('.member.keep').length,
      checked: g.querySelectorAll('input[type=radio]:checked').length,
    })));
    check(groups.every((g) => g.members >= 2 && g.kept === 1 && g.checked === 1), 'each group: members, one kept: ' + JSON.stringify(groups));
    out.duplicate_groups = groups.length;
    await page.selectOption('#tier', 'exact');
    await waitFor(() => page.$$eval('#groups .group', (g, n) => g.length === n, cfg.exact_groups), 'the exact tier');
    await page.click('#dup-suggest-q');
    await page.waitForSelector('#dup-undo', { timeout: 60000 });
    for (const v of cfg.victims) check(!fs.existsSync(v), v + ' was moved');
    for (const v of cfg.victims) check(fs.existsSync(cfg.quarantine + v), v + ' is in the quarantine');
    await page.click('#dup-undo');
    await waitFor(() => page.$eval('#dupdone', (e) => /Undo of run \d+: done/.test(e.textContent)), 'the undo');
    for (const v of cfg.victims) check(fs.existsSync(v), v + ' is back');
    check(!cfg.victims.some((v) => fs.existsSync(cfg.quarantine + v)), 'the quarantine is empty again');

    // A job from the page: its progress is shown while it runs, then it is done.
    await page.click('#tabs button[data-tab=jobs]');
    await page.selectOption('#job-kind', 'convert');
    await page.fill('#job-paths', cfg.convert_src);
    await page.fill('#job-output', cfg.convert_out);
    await page.fill('#job-chain', 'sharpen:0.5,webp:90');
    await page.click('#job-form button[type=submit]');
    const jobId = async () => Number(await waitFor(() => page.$eval('#job-note', (e) => (/Job (\d+) started/.exec(e.textContent) || [])[1]), 'the job to start'));
    const convertJob = await jobId();
    const progress = [];
    await waitFor(async () => {
      const card = await page.$(`#joblist .job[data-job="${convertJob}"]`);
      if (!card) return false;
      const state = await card.getAttribute('data-state');
      const text = await card.$eval('.progress', (e) => e.textContent);
      progress.push([state, text]);
      return state === 'done' || state === 'failed' || state === 'cancelled';
    }, 'the convert job', 300000);
    const last = progress[progress.length - 1];
    check(last[0] === 'done', 'the job ended ' + JSON.stringify(last));
    check(progress.some(([s, t]) => s === 'running' && /^\d+ \/ \d+/.test(t)), 'progress shown while running: ' + JSON.stringify(progress.slice(0, 5)));
    check(last[1].startsWith(`${cfg.convert_files} / ${cfg.convert_files}`), 'the final count: ' + last[1]);
    check(fs.readdirSync(cfg.convert_out).length === cfg.convert_files, 'the converted files exist');
    out.job_progress_updates = new Set(progress.map((p) => p.join(' '))).size;

    // An index job from the page: the timeline then shows the new photos.
    await page.selectOption('#job-kind', 'index');
    await page.fill('#job-paths', cfg.index_dir);
    await page.$eval('#job-note', (e) => { e.textContent = ''; });
    await page.click('#job-form button[type=submit]');
    const indexJob = await jobId();
    await waitFor(() => page.$eval(`#joblist .job[data-job="${indexJob}"]`, (c) => c.dataset.state === 'done').catch(() => false), 'the index job', 120000);
    // (The server looks for catalog changes at most once a second: the tab is opened again until
    // the new photos are there.)
    const want = `${cfg.total + cfg.index_files} items`;
    await waitFor(async () => {
      await page.click('#tabs button[data-tab=timeline]');
      await page.waitForTimeout(1000);
      return page.$eval('#status', (s, want) => s.textContent === want, want);
    }, 'the timeline to grow', 30000);
    check(errors.length === 0, 'no script errors: ' + errors.join('; '));
    console.log(JSON.stringify(out));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(String(e && e.stack || e));
  process.exit(1);
});
