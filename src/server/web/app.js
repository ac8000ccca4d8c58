// lumen's web app: a virtualised timeline over the catalog, search, and a viewer. No build step,
// no framework: the grid never holds more elements than fit on a few screens, whatever the size
// of the library.
'use strict';

const api = '/api/v1';
const token = document.querySelector('meta[name="lumen-token"]').content;
const $ = (id) => document.getElementById(id);
const scroller = $('scroller'), spacer = $('spacer'), layer = $('layer'), scrubber = $('scrubber');
const status = $('status');

// Browsers cap an element's height (~16-33M px): past this, scrolling maps onto the virtual
// height proportionally, so the bottom of any timeline stays reachable.
const MAX_SPACER = 8e6;
const HEADER = 40, GAP = 2, TARGET = 180, PAGE = 500;

async function getJson(path, signal) {
  const r = await fetch(api + path, { signal, credentials: 'same-origin' });
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || r.statusText);
  return r.json();
}

// A source of assets: sections (a month, or "results") over a flat list of ids, loaded in pages.
class TimelineSource {
  constructor(t) {
    this.total = t.total;
    const keys = t.days || t.months, label = t.days ? dayLabel : monthLabel;
    this.sections = keys.map((m, i) => ({ label: label(m), year: m.slice(0, 4), offset: t.offsets[i], count: t.counts[i] }));
    this.pages = new Map();  // page -> {ids, kinds} | {pending: AbortController}
  }
  entry(i) {
    const p = this.pages.get(Math.floor(i / PAGE));
    if (!p || !p.ids) return null;
    const k = i % PAGE;
    return k < p.ids.length ? { id: p.ids[k], kind: p.kinds[k] } : null;
  }
  // Loads the pages covering [lo, hi); cancels pages no longer wanted. Calls done() on arrival.
  want(lo, hi, done) {
    const first = Math.floor(lo / PAGE), last = Math.floor(Math.max(lo, hi - 1) / PAGE);
    for (const [p, v] of this.pages) {
      if (v.pending && (p < first - 1 || p > last + 1)) { v.pending.abort(); this.pages.delete(p); }
    }
    for (let p = first; p <= last; ++p) {
      if (this.pages.has(p)) continue;
      const ctl = new AbortController();
      this.pages.set(p, { pending: ctl });
      getJson(`/timeline/assets?offset=${p * PAGE}&count=${PAGE}`, ctl.signal).then((r) => {
        this.pages.set(p, { ids: r.ids, kinds: r.kinds });
        done();
      }).catch(() => this.pages.delete(p));
    }
  }
}

// Search results: `moments[i]` is the time (s) in a video where hit i matches, or null.
class ListSource {
  constructor(label, ids, moments) {
    this.total = ids.length;
    this.ids = ids;
    this.moments = moments || [];
    this.sections = [{ label: `${label} (${ids.length})`, offset: 0, count: ids.length }];
  }
  entry(i) {
    if (i >= this.ids.length) return null;
    const t = this.moments[i];
    return t === null || t === undefined ? { id: this.ids[i], kind: 'p' } : { id: this.ids[i], kind: 'v', t };
  }
  want() {}
}

// One formatter for every month (toLocaleString with options builds one per call: ~0.3 ms each,
// most of the first frame's time for a library of 20 years).
const monthFormat = new Intl.DateTimeFormat(undefined, { month: 'long', year: 'numeric', timeZone: 'UTC' });
function monthLabel(m) {
  if (!m) return 'Undated';
  const [y, mo] = m.split('-').map(Number);
  return monthFormat.format(new Date(Date.UTC(y, mo - 1, 1)));
}
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' });
function dayLabel(d) {
  if (!d) return 'Undated';
  const [y, mo, da] = d.split('-').map(Number);
  return dayFormat.format(new Date(Date.UTC(y, mo - 1, da)));
}

// The grid: square cells, a header per section, only the rows on screen (and one screen either
// side) exist as elements; an image is requested only while its cell is on screen.
class Grid {
  constructor() {
    this.source = null;
    this.cells = new Map();   // index -> element
    this.heads = new Map();   // section -> element
    this.pool = [];           // cells no longer on screen, kept (hidden) for reuse
    this.queued = false;
    this.lastTop = 0;
    this.settle = 0;
    scroller.addEventListener('scroll', () => this.schedule(), { passive: true });
    scroller.addEventListener('wheel', (e) => this.wheel(e), { passive: false });
    window.addEventListener('resize', () => {
      // A new column count and cell size: every cell is made again.
      this.wheelTop = undefined;
      for (const el of this.cells.values()) this.recycle(el);
      this.cells.clear();
      this.layout();
      this.schedule();
    });
    layer.addEventListener('click', (e) => {
      const cell = e.target.closest('.cell');
      if (cell) viewer.open(Number(cell.dataset.index));
    });
  }
  // `keepPlace`: the same view refreshed (the library changed): the grid stays where it was.
  setSource(s, keepPlace) {
    const top = scroller.scrollTop;
    this.source = s;
    this.wheelTop = undefined;
    for (const el of this.cells.values()) this.recycle(el);
    this.cells.clear();
    for (const el of this.heads.values()) el.remove();
    this.heads.clear();
    this.layout();
    scroller.scrollTop = keepPlace ? top : 0;
    this.render();
  }
  layout() {
    const w = scroller.clientWidth;
    this.cols = Math.max(1, Math.floor(w / TARGET));
    this.size = Math.floor(w / this.cols);
    let y = 0;
    this.tops = [];
    for (const s of this.source ? this.source.sections : []) {
      this.tops.push(y);
      y += HEADER + Math.ceil(s.count / this.cols) * this.size;
    }
    this.height = y;
    this.spacerHeight = Math.min(y, MAX_SPACER);
    spacer.style.height = this.spacerHeight + 'px';
    this.drawScrubber();
  }
  // The virtual position of the top of the view.
  virtualTop() {
    const view = scroller.clientHeight;
    const real = this.spacerHeight - view, virt = this.height - view;
    if (real <= 0) return 0;
    if (this.height === this.spacerHeight) return scroller.scrollTop;
    // Where the wheel put it, to the pixel, while the scroll position is the one it set.
    if (this.wheelTop !== undefined && Math.abs(scroller.scrollTop - this.wheelAt) < 1) return this.wheelTop;
    this.wheelTop = undefined;
    return (scroller.scrollTop / real) * virt;
  }
  // Past the height cap a wheel notch would move the grid several times as far as it says: the
  // wheel moves the virtual position by its own delta instead.
  wheel(e) {
    if (!this.source || this.height === this.spacerHeight || e.ctrlKey || !e.deltaY) return;
    e.preventDefault();
    const view = scroller.clientHeight, k = e.deltaMode === 1 ? 40 : e.deltaMode === 2 ? view : 1;
    const v = Math.max(0, Math.min(this.height - view, this.virtualTop() + e.deltaY * k));
    this.scrollToVirtual(v);
    this.wheelTop = v;
    this.wheelAt = scroller.scrollTop;
    this.schedule();
  }
  scrollToVirtual(v) {
    const view = scroller.clientHeight;
    const real = this.spacerHeight - view, virt = this.height - view;
    scroller.scrollTop = virt <= 0 ? 0 : (v / virt) * real;
  }
  schedule() {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => { this.queued = false; this.render(); });
  }
  section(y) {  // the last section starting at or above y
    let lo = 0, hi = this.tops.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.tops[mid] <= y) lo = mid; else hi = mid - 1;
    }
    return lo;
  }
  render() {
    const s = this.source;
    if (!s || !s.sections.length) return;
    const view = scroller.clientHeight, top = this.virtualTop();
    const y0 = Math.max(0, top - view), y1 = top + 2 * view;
    // Scrolling fast (more than 1/8 of a screen per frame, ~6,000 px/s): cells without a
    // thumbnail yet stay empty, and the thumbnails of what is on screen are requested once the
    // grid slows down or stops (120 ms). A thumbnail decoded and drawn for a cell that is gone a
    // few frames later is what makes a fast scroll stutter, on a slow machine most of all.
    const fast = Math.abs(top - this.lastTop) > view / 8;
    this.lastTop = top;
    if (fast) {
      clearTimeout(this.settle);
      this.settle = setTimeout(() => { this.lastTop = this.virtualTop(); this.schedule(); }, 120);
    }
    // Up to MAX_SPACER the grid scrolls natively: cells sit at their own place and stay there
    // (a frame only adds the rows coming into view). Beyond, the layer follows the scroll
    // position and cells are placed relative to the virtual top.
    const scaled = this.height !== this.spacerHeight;
    const origin = scaled ? top : 0;
    const shift = scaled ? `translateY(${scroller.scrollTop}px)` : 'none';
    if (layer.style.transform !== shift) layer.style.transform = shift;
    const wanted = new Set(), heads = new Set();
    let lo = Infinity, hi = 0;
    for (let k = this.section(y0); k < s.sections.length && this.tops[k] < y1; ++k) {
      const sec = s.sections[k], t = this.tops[k];
      heads.add(k);
      let head = this.heads.get(k);
      if (!head) {
        head = document.createElement('div');
        head.className = 'month';
        head.textContent = sec.label;
        layer.appendChild(head);
        this.heads.set(k, head);
      }
      const hy = (t - origin) + 'px';
      if (head.style.top !== hy) head.style.top = hy;
      const rows = Math.ceil(sec.count / this.cols);
      const r0 = Math.max(0, Math.floor((y0 - t - HEADER) / this.size));
      const r1 = Math.min(rows, Math.ceil((y1 - t - HEADER) / this.size));
      for (let r = r0; r < r1; ++r) {
        for (let c = 0; c < this.cols; ++c) {
          const j = r * this.cols + c;
          if (j >= sec.count) break;
          const i = sec.offset + j;
          wanted.add(i);
          lo = Math.min(lo, i);
          hi = Math.max(hi, i + 1);
          let el = this.cells.get(i);
          if (!el) {
            el = this.make(i);
            this.cells.set(i, el);
          }
          const y = t + HEADER + r * this.size;
          const at = `translate(${c * this.size}px, ${y - origin}px)`;
          if (el._at !== at) { el.style.transform = at; el._at = at; }
          this.fill(el, i, y - top, view, fast);
        }
      }
    }
    for (const [i, el] of this.cells) if (!wanted.has(i)) { this.recycle(el); this.cells.delete(i); }
    for (const [k, el] of this.heads) if (!heads.has(k)) { el.remove(); this.heads.delete(k); }
    if (lo < hi) s.want(lo, hi, () => this.schedule());
    this.moveScrubber(top);
  }
  make(i) {
    let el = this.pool.pop();
    if (el) {
      el.style.display = '';
    } else {
      el = document.createElement('div');
      el.className = 'cell';
      layer.appendChild(el);
    }
    el.dataset.index = i;
    delete el.dataset.id;
    el._at = '';
    el.style.width = el.style.height = (this.size - GAP) + 'px';
    return el;
  }
  // The image only while the cell is on screen; leaving it (src removed) cancels its request.
  fill(el, i, y, view, fast) {
    const onScreen = y + this.size > 0 && y < view;
    const e = this.source.entry(i);
    let img = el.firstChild;
    if (!e || !onScreen) {
      if (img && !img.complete) { img.removeAttribute('src'); img.remove(); }
      return;
    }
    el.classList.toggle('v', e.kind === 'v');
    el.dataset.id = e.id;
    if (e.t !== undefined) el.dataset.t = timecode(e.t);
    else if (el.dataset.t) delete el.dataset.t;
    if (!img && !fast) {
      img = new Image();
      img.decoding = 'async';
      img.alt = '';
      img.src = `${api}/assets/${e.id}/thumbnail`;
      el.appendChild(img);
    }
  }
  recycle(el) {
    const img = el.firstChild;
    if (img) { img.removeAttribute('src'); img.remove(); }
    if (this.pool.length < 400) {
      el.style.display = 'none';
      el.classList.remove('v');
      delete el.dataset.id;
      delete el.dataset.index;
      delete el.dataset.t;
      this.pool.push(el);
    } else {
      el.remove();
    }
  }
  drawScrubber() {
    scrubber.textContent = '';
    this.thumb = document.createElement('div');
    this.thumb.className = 'thumb';
    scrubber.appendChild(this.thumb);
    if (!this.source || !this.height) return;
    const h = scrubber.clientHeight;
    let lastYear = '', lastY = -100;
    this.source.sections.forEach((sec, k) => {
      const year = sec.year || '';
      const y = (this.tops[k] / this.height) * h;
      if (year !== lastYear && y - lastY > 14) {
        const el = document.createElement('div');
        el.className = 'year';
        el.style.top = y + 'px';
        el.textContent = year;
        scrubber.appendChild(el);
        lastY = y;
      }
      lastYear = year;
    });
  }
  moveScrubber(top) {
    if (this.thumb && this.height) this.thumb.style.top = (top / this.height) * scrubber.clientHeight + 'px';
  }
}

const grid = new Grid();

// The scrubber: press or drag to jump to that point of the library.
function scrub(e) {
  const r = scrubber.getBoundingClientRect();
  const f = Math.min(1, Math.max(0, (e.clientY - r.top) / r.height));
  grid.scrollToVirtual(f * Math.max(0, grid.height - scroller.clientHeight));
}
scrubber.addEventListener('pointerdown', (e) => {
  scrubber.setPointerCapture(e.pointerId);
  scrub(e);
  const move = (ev) => scrub(ev);
  scrubber.addEventListener('pointermove', move);
  scrubber.addEventListener('pointerup', () => scrubber.removeEventListener('pointermove', move), { once: true });
});

const viewer = {
  index: -1,
  open(i) {
    const e = grid.source.entry(i);
    if (!e) return;
    this.index = i;
    const ask = this.ask = (this.ask || 0) + 1;  // a fast step: only the last asset is shown
    $('viewer').hidden = false;
    const stage = $('stage');
    stage.textContent = '';
    $('shots').textContent = '';
    $('info').textContent = 'Loading…';
    getJson(`/assets/${e.id}`).then((d) => { if (ask === this.ask && !$('viewer').hidden) this.show(d, e.t); })
      .catch((err) => { if (ask === this.ask) $('info').textContent = err.message; });
  },
  // `at`: a search hit's moment in a video, where it opens.
  show(d, at) {
    const stage = $('stage');
    if (d.media === 'video') {
      const v = document.createElement('video');
      v.controls = true;
      v.preload = 'metadata';
      if (at !== undefined) v.addEventListener('loadedmetadata', () => { v.currentTime = at; }, { once: true });
      v.poster = `${api}/assets/${d.id}/thumbnail`;
      v.src = `${api}/assets/${d.id}/original`;
      stage.appendChild(v);
      for (const [a] of d.shots || []) {
        const b = document.createElement('button');
        b.textContent = timecode(a);
        b.addEventListener('click', () => { v.currentTime = a; v.play(); });
        $('shots').appendChild(b);
      }
    } else {
      const img = new Image();
      img.src = `${api}/assets/${d.id}/thumbnail`;
      // The original where the browser decodes it (JPEG, PNG, WebP...); the thumbnail otherwise.
      const full = new Image();
      full.onload = () => { img.src = full.src; };
      full.src = `${api}/assets/${d.id}/original`;
      stage.appendChild(img);
    }
    const info = $('info');
    info.textContent = '';
    const dl = document.createElement('dl');
    const row = (k, v) => {
      if (v === undefined || v === null || v === '') return;
      const dt = document.createElement('dt'), dd = document.createElement('dd');
      dt.textContent = k;
      dd.textContent = v;
      dl.append(dt, dd);
    };
    const m = d.metadata || {};
    row('Taken', m.captured_at);
    row('Camera', [m.make, m.model].filter(Boolean).join(' '));
    row('Lens', m.lens);
    row('Exposure', [m.shutter && `${m.shutter} s`, m.aperture && `f/${m.aperture}`, m.iso && `ISO ${m.iso}`, m.focal_length && `${m.focal_length} mm`].filter(Boolean).join('  '));
    if (m.latitude !== undefined) row('Location', `${m.latitude.toFixed(5)}, ${m.longitude.toFixed(5)}`);
    row('Size', `${d.width} × ${d.height}, ${(d.size / 1048576).toFixed(1)} MB, ${d.format}`);
    if (d.duration) row('Duration', timecode(d.duration));
    if (d.description) row('Description', typeof d.description === 'string' ? d.description : (d.description.description || d.description.caption || JSON.stringify(d.description)));
    row('Files', (d.paths || []).join('\n'));
    info.appendChild(dl);
    const similar = el('button', { id: 'similar', textContent: 'Similar', title: 'photos and videos that look like this one' });
    similar.addEventListener('click', () => { this.close(); searchBy({ similar: d.id, limit: 500 }, 'Similar'); });
    info.appendChild(similar);
    if (d.tags && d.tags.length) {
      const tags = document.createElement('div');
      for (const t of d.tags.slice(0, 30)) {
        const s = document.createElement('span');
        s.className = 'tag';
        s.textContent = t.term;
        s.title = t.confidence.toFixed(2);
        tags.appendChild(s);
      }
      info.appendChild(tags);
    }
  },
  close() {
    $('viewer').hidden = true;
    $('stage').textContent = '';
    this.index = -1;
  },
  step(d) {
    const i = this.index + d;
    if (i >= 0 && i < grid.source.total) this.open(i);
  },
};
$('close').addEventListener('click', () => viewer.close());
$('prev').addEventListener('click', () => viewer.step(-1));
$('next').addEventListener('click', () => viewer.step(1));
document.addEventListener('keydown', (e) => {
  if ($('viewer').hidden) return;
  if (e.key === 'Escape') viewer.close();
  else if (e.key === 'ArrowLeft') viewer.step(-1);
  else if (e.key === 'ArrowRight') viewer.step(1);
});

function timecode(t) {
  const s = Math.floor(t);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}.${Math.floor((t - s) * 10)}`;
}

// What the grid shows is the last one asked for: each request for a new grid takes a number, and
// an answer that arrives after a later request is dropped (a slow timeline never replaces the
// search results asked for after it).
let gridAsk = 0;

async function showTimeline(keepPlace) {
  // A refresh (keepPlace) takes no new number: a search asked for meanwhile still wins.
  const ask = keepPlace ? gridAsk : ++gridAsk;
  // The first page of the timeline is asked for with the bucket list (they arrive together), so
  // the first thumbnails are requested in the same frame the grid is laid out.
  const firstPage = getJson(`/timeline/assets?offset=0&count=${PAGE}`).catch(() => null);
  const t = await getJson('/timeline?group=' + $('group').value);
  const source = new TimelineSource(t);
  const first = await firstPage;
  if (ask !== gridAsk) return;
  if (first && first.version === t.version) source.pages.set(0, { ids: first.ids, kinds: first.kinds });
  grid.setSource(source, keepPlace);
  status.textContent = `${t.total.toLocaleString()} items`;
}
$('group').value = localStorage.getItem('lumen.group') || 'month';
$('group').addEventListener('change', () => {
  localStorage.setItem('lumen.group', $('group').value);
  if (current === 'timeline') showTimeline().catch((err) => { status.textContent = err.message; });
});

$('search').addEventListener('submit', async (e) => {
  e.preventDefault();
  const body = { q: $('q').value.trim(), media: $('media').value, from: $('from').value, to: $('to').value, limit: 500 };
  if (!body.q && !body.media && !body.from && !body.to) return showTimeline();
  if (current !== 'timeline') tab('timeline', true);
  searchBy(body, body.q ? `“${body.q}”` : 'Matches');
});

async function searchBy(body, label) {
  const ask = ++gridAsk;
  try {
    const r = await fetch(api + '/search', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-Lumen-Token': token },
      body: JSON.stringify(body),
    });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error || r.statusText);
    if (ask !== gridAsk) return;
    grid.setSource(new ListSource(label, j.ids, j.moments));
    status.textContent = `${j.ids.length} results`;
  } catch (err) {
    status.textContent = err.message;
  }
}
$('home').addEventListener('click', (e) => { e.preventDefault(); $('q').value = ''; tab('timeline'); });

// ---- changes: every POST carries the token header (the server refuses it otherwise) ----

async function post(path, body) {
  const r = await fetch(api + path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-Lumen-Token': token },
    body: JSON.stringify(body || {}),
  });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}

function note(id, text, err) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle('err', !!err);
}

function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

const lines = (id) => $(id).value.split('\n').map((s) => s.trim()).filter(Boolean);

// ---- tabs ----

const main = document.querySelector('main');
let current = 'timeline';
function tab(name, keepGrid) {
  current = name;
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('on', b.dataset.tab === name);
  const gridTab = name === 'timeline' || name === 'folders';
  scroller.hidden = scrubber.hidden = !gridTab;
  $('bar').hidden = name !== 'folders';
  $('group').hidden = name !== 'timeline';
  main.classList.toggle('with-bar', name === 'folders');
  for (const p of ['map', 'duplicates', 'organize', 'jobs']) $(p).hidden = p !== name;
  if (name === 'timeline' && !keepGrid) showTimeline().catch((err) => { status.textContent = err.message; });
  if (name === 'folders') showFolder(null);
  if (name === 'map') mapView.show();
  if (name === 'duplicates') showDuplicates(true);
  if (name === 'jobs') showRuns();
}
for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => tab(b.dataset.tab));

// ---- map: where the photos were taken, as clusters on a plain graticule ----
// No tile server is reachable offline, so there is no base map: a grid of degrees and the
// clusters the server makes for the box on screen (one per 48 px cell at most, never every
// marker). Drag to pan, wheel to zoom; a click on a cluster zooms in, or, for a small one, shows
// its photos in the grid.

const mapView = {
  box: { west: -180, south: -90, east: 180, north: 90 },
  data: null,
  ask: 0,
  show() {
    const c = $('mapcanvas');
    const dpr = window.devicePixelRatio || 1;
    c.width = Math.round(c.clientWidth * dpr);
    c.height = Math.round(c.clientHeight * dpr);
    this.fit();
    this.load();
  },
  // Same degrees per pixel across and down (the box grows to the canvas's shape), at most the
  // world's width, its centre on the world (past a pole or the date line is empty space).
  fit() {
    const c = $('mapcanvas'), b = this.box;
    const cx = Math.min(180, Math.max(-180, (b.west + b.east) / 2)), cy = Math.min(90, Math.max(-90, (b.south + b.north) / 2));
    let w = b.east - b.west, h = b.north - b.south;
    const aspect = c.clientWidth / Math.max(1, c.clientHeight);
    if (w / h > aspect) h = w / aspect; else w = h * aspect;
    const k = Math.min(360 / w, Math.max(1, 0.002 / w));
    w *= k; h *= k;
    this.box = { west: cx - w / 2, south: cy - h / 2, east: cx + w / 2, north: cy + h / 2 };
  },
  // The part of the box inside the world, as the server takes it.
  world(b) {
    return { west: Math.max(-180, b.west), south: Math.max(-90, b.south), east: Math.min(180, b.east), north: Math.min(90, b.north) };
  },
  px(lon, lat) {
    const c = $('mapcanvas'), b = this.box;
    return [(lon - b.west) / (b.east - b.west) * c.clientWidth, (b.north - lat) / (b.north - b.south) * c.clientHeight];
  },
  deg(x, y) {
    const c = $('mapcanvas'), b = this.box;
    return [b.west + x / c.clientWidth * (b.east - b.west), b.north - y / c.clientHeight * (b.north - b.south)];
  },
  // What the server is asked (6 decimals); the answer's cells are cut from this same box.
  round(b) {
    const r = (v) => Number(v.toFixed(6));
    return { west: r(b.west), south: r(b.south), east: r(b.east), north: r(b.north) };
  },
  query(b) { return `west=${b.west}&south=${b.south}&east=${b.east}&north=${b.north}`; },
  async load() {
    const c = $('mapcanvas');
    const ask = ++this.ask, box = this.round(this.world(this.box));
    if (!(box.west < box.east && box.south < box.north)) return;
    // One cluster per ~48 px of the visible world.
    const [x0, y0] = this.px(box.west, box.north), [x1, y1] = this.px(box.east, box.south);
    const cols = Math.max(1, Math.min(256, Math.round((x1 - x0) / 48))), rows = Math.max(1, Math.min(256, Math.round((y1 - y0) / 48)));
    try {
      const d = await getJson(`/map?${this.query(box)}&cols=${cols}&rows=${rows}`);
      if (ask !== this.ask) return;
      this.data = { ...d, box };
      $('mapnote').textContent = d.all ? `${d.total.toLocaleString()} of ${d.all.toLocaleString()} photos with a position in view` : 'No photo has a GPS position';
      this.draw();
    } catch (err) {
      $('mapnote').textContent = err.message;
    }
  },
  draw() {
    const c = $('mapcanvas'), g = c.getContext('2d'), dpr = c.width / Math.max(1, c.clientWidth);
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = '#0d0d0d';
    g.fillRect(0, 0, c.clientWidth, c.clientHeight);
    const w = this.world(this.box), [wx0, wy0] = this.px(w.west, w.north), [wx1, wy1] = this.px(w.east, w.south);
    g.fillStyle = '#141a20';
    g.fillRect(wx0, wy0, wx1 - wx0, wy1 - wy0);
    // The graticule: the largest round step that gives at least 6 lines across.
    const b = this.box, span = b.east - b.west;
    const step = [90, 45, 30, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001].find((s) => span / s >= 6) || 0.001;
    g.strokeStyle = '#26313b'; g.fillStyle = '#5d6b78'; g.lineWidth = 1; g.font = '11px system-ui';
    const digits = step >= 1 ? 0 : Math.ceil(-Math.log10(step));
    for (let lon = Math.ceil(w.west / step) * step; lon <= w.east; lon += step) {
      const [x] = this.px(lon, 0);
      g.beginPath(); g.moveTo(x, wy0); g.lineTo(x, wy1); g.stroke();
      g.fillText(`${Math.abs(lon).toFixed(digits)}°${lon < 0 ? 'W' : lon > 0 ? 'E' : ''}`, x + 3, Math.min(wy1, c.clientHeight) - 4);
    }
    for (let lat = Math.ceil(w.south / step) * step; lat <= w.north; lat += step) {
      const [, y] = this.px(0, lat);
      g.beginPath(); g.moveTo(wx0, y); g.lineTo(wx1, y); g.stroke();
      g.fillText(`${Math.abs(lat).toFixed(digits)}°${lat < 0 ? 'S' : lat > 0 ? 'N' : ''}`, Math.max(wx0, 0) + 3, y - 3);
    }
    const d = this.data;
    if (!d) return;
    g.textAlign = 'center'; g.textBaseline = 'middle'; g.font = '600 11px system-ui';
    this.spots = [];
    for (let i = 0; i < d.count.length; ++i) {
      const [x, y] = this.px(d.lon[i], d.lat[i]);
      const r = 5 + 3 * Math.log2(d.count[i]);
      this.spots.push({ x, y, r, i });
      g.beginPath(); g.arc(x, y, r, 0, 2 * Math.PI);
      g.fillStyle = 'rgba(74, 158, 255, 0.55)'; g.fill();
      g.strokeStyle = '#4a9eff'; g.stroke();
      if (d.count[i] > 1) { g.fillStyle = '#fff'; g.fillText(String(d.count[i]), x, y); }
    }
    g.textAlign = 'start'; g.textBaseline = 'alphabetic';
  },
  // Zoom by `f` (< 1: in) keeping the point under (x, y) where it is.
  zoom(f, x, y) {
    const [lon, lat] = this.deg(x, y), b = this.box;
    this.box = { west: lon - (lon - b.west) * f, east: lon + (b.east - lon) * f, south: lat - (lat - b.south) * f, north: lat + (b.north - lat) * f };
    this.fit();
    this.draw();
    this.load();
  },
  // The cluster's cell of the grid it was made in: its photos in the grid, or a zoom towards it.
  async pick(s) {
    const d = this.data, b = d.box;
    const col = d.cell[s.i] % d.cols, row = Math.floor(d.cell[s.i] / d.cols);
    const cw = (b.east - b.west) / d.cols, ch = (b.north - b.south) / d.rows;
    const cell = this.round({ west: b.west + col * cw, east: b.west + (col + 1) * cw, north: b.north - row * ch, south: b.north - (row + 1) * ch });
    if (d.count[s.i] > 200 && cw > 0.01) return this.zoom(0.25, s.x, s.y);
    const ask = ++gridAsk;
    const r = await getJson(`/map/assets?${this.query(cell)}&limit=10000`);
    if (ask !== gridAsk || current !== 'map') return;
    tab('timeline', true);
    grid.setSource(new ListSource(`Near ${d.lat[s.i].toFixed(3)}, ${d.lon[s.i].toFixed(3)}`, r.ids));
    status.textContent = `${r.total} photos here`;
  },
};
{
  const c = $('mapcanvas');
  let drag = null;
  c.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    drag = { x: e.offsetX, y: e.offsetY, box: { ...mapView.box }, moved: false };
    c.setPointerCapture(e.pointerId);
  });
  // Capture lost (a window switch, a touch cancelled): the drag ends where it is.
  const endDrag = () => {
    c.classList.remove('drag');
    const d = drag;
    drag = null;
    if (d && d.moved) mapView.load();
  };
  c.addEventListener('pointercancel', endDrag);
  c.addEventListener('lostpointercapture', () => { if (drag) endDrag(); });
  c.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const dx = e.offsetX - drag.x, dy = e.offsetY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    if (!drag.moved) return;
    c.classList.add('drag');
    const b = drag.box, kx = (b.east - b.west) / c.clientWidth, ky = (b.north - b.south) / c.clientHeight;
    mapView.box = { west: b.west - dx * kx, east: b.east - dx * kx, south: b.south + dy * ky, north: b.north + dy * ky };
    mapView.fit();
    mapView.draw();
  });
  c.addEventListener('pointerup', (e) => {
    const d = drag;
    endDrag();
    if (!d || d.moved) return;
    const hit = (mapView.spots || []).find((s) => (s.x - e.offsetX) ** 2 + (s.y - e.offsetY) ** 2 <= (s.r + 2) ** 2);
    if (hit) mapView.pick(hit).catch((err) => { $('mapnote').textContent = err.message; });
  });
  c.addEventListener('wheel', (e) => { e.preventDefault(); mapView.zoom(e.deltaY > 0 ? 1.25 : 0.8, e.offsetX, e.offsetY); }, { passive: false });
  window.addEventListener('resize', () => { if (current === 'map') mapView.show(); });
}

// ---- folders: a breadcrumb, the subfolders, and the folder's own files as the grid ----

async function showFolder(path) {
  const bar = $('bar');
  const ask = ++gridAsk;
  try {
    const f = await getJson('/folders?limit=10000' + (path ? '&path=' + encodeURIComponent(path) : ''));
    if (ask !== gridAsk) return;
    bar.textContent = '';
    const crumbs = el('div', { className: 'crumbs' });
    const parts = f.folder.split('/').filter(Boolean);
    const rootDepth = f.root.split('/').filter(Boolean).length;
    parts.forEach((p, i) => {
      const to = '/' + parts.slice(0, i + 1).join('/');
      if (i + 1 < rootDepth) return;
      crumbs.append(' / ', i + 1 === parts.length ? p : el('a', { textContent: p, onclick: () => showFolder(to) }));
    });
    crumbs.append(`  (${f.total.toLocaleString()} files)`);
    bar.append(crumbs);
    const subs = el('div');
    for (const s of f.folders)
      subs.append(el('a', { className: 'sub', textContent: `${s.name} (${s.count})`, onclick: () => showFolder(f.folder.replace(/\/$/, '') + '/' + s.name) }));
    bar.append(subs);
    grid.setSource(new ListSource(f.folder, f.ids));
    status.textContent = `${f.files} here, ${f.folders.length} folders`;
  } catch (err) {
    bar.textContent = err.message;
  }
}

// ---- duplicates: groups side by side, the suggested keeper preselected ----

const dups = { offset: 0, tier: '', groups: [], ask: 0 };
async function showDuplicates(reset) {
  // The last page asked for wins (a tier changed twice, or More pressed during a reload).
  const ask = ++dups.ask;
  if (reset) { dups.offset = 0; dups.groups = []; $('groups').textContent = ''; }
  note('dupnote', 'Finding duplicates…');
  try {
    const tier = reset ? $('tier').value : dups.tier;
    const d = await getJson(`/duplicates?limit=50&offset=${dups.offset}` + (tier ? '&tier=' + tier : ''));
    if (ask !== dups.ask) return;
    const sel = $('tier');
    const tiers = Object.keys(d.tiers);
    if (reset) {
      sel.textContent = '';
      sel.append(el('option', { value: '', textContent: 'all' }));
      for (const t of tiers) sel.append(el('option', { value: t, textContent: `${t} (${d.tiers[t]})` }));
      sel.value = tiers.includes(tier) ? tier : '';
    }
    dups.tier = sel.value;
    const total = Object.values(d.tiers).reduce((a, b) => a + b, 0);
    $('dupsum').textContent = `${d.total} groups shown of ${total}`;
    for (const g of d.groups) renderGroup(g);
    dups.offset += d.groups.length;
    $('dup-more').hidden = dups.offset >= d.total;
    note('dupnote', d.total ? '' : 'No duplicates in this tier.');
  } catch (err) {
    note('dupnote', err.message, true);
  }
}

function renderGroup(g) {
  const k = dups.groups.length;
  dups.groups.push(g);
  const box = el('div', { className: 'group' });
  box.dataset.group = k;
  box.append(el('h4', { textContent: `${g.tier}: ${g.members.length} files — keep: ${g.keep_reason}` }));
  const row = el('div', { className: 'members' });
  g.members.forEach((m, i) => {
    const card = el('div', { className: 'member' + (m.keep ? ' keep' : '') });
    const img = el('img', { alt: '', loading: 'lazy', decoding: 'async', src: `${api}/assets/${m.asset}/thumbnail` });
    const radio = el('input', { type: 'radio', name: `keep-${k}`, checked: m.keep, value: String(i) });
    radio.addEventListener('change', () => {
      for (const c of row.children) c.classList.remove('keep');
      card.classList.add('keep');
    });
    card.append(img, el('div', { className: 'path', textContent: m.path }),
      el('div', { className: 'why', textContent: m.reason }),
      el('div', { textContent: `${m.width}×${m.height} ${m.format}, ${(m.size / 1048576).toFixed(2)} MB${m.captured ? ', ' + m.captured : ''}` }),
      el('label', {}, radio, ' keep this one'));
    row.append(card);
  });
  box.append(row);
  $('groups').append(box);
}

// What the page says to remove: every member but the chosen keeper, in every group shown.
function pageChoice() {
  const remove = [];
  document.querySelectorAll('#groups .group').forEach((box) => {
    const g = dups.groups[Number(box.dataset.group)];
    const chosen = box.querySelector('input[type=radio]:checked');
    const keep = g.members[chosen ? Number(chosen.value) : 0];
    for (const m of g.members) if (m !== keep && m.path !== keep.path) remove.push({ path: m.path, keep: keep.path });
  });
  return remove;
}

async function applyDuplicates(body) {
  note('dupnote', 'Planning…');
  try {
    const r = await post('/duplicates/apply', body);
    note('dupnote', `Run ${r.run}: ${r.files} files (job ${r.job})…`);
    const job = await waitJob(r.job);
    const box = $('dupdone');
    box.textContent = `Run ${r.run} ${job.state}: ${summary(job)} `;
    box.append(el('button', { id: 'dup-undo', textContent: `Undo run ${r.run}`, onclick: () => undoRun(r.run, 'dupdone') }));
    await showDuplicates(true);
  } catch (err) {
    note('dupnote', err.message, true);
  }
}

async function undoRun(run, noteId) {
  try {
    const r = await post(`/runs/${run}/undo`);
    note(noteId, `Undoing run ${run} (job ${r.job})…`);
    const job = await waitJob(r.job);
    note(noteId, `Undo of run ${run}: ${job.state}. ${summary(job)}`, job.state !== 'done');
    if (current === 'duplicates') showDuplicates(true);
    if (current === 'jobs') showRuns();
  } catch (err) {
    note(noteId, err.message, true);
  }
}

$('tier').addEventListener('change', () => showDuplicates(true));
$('dup-more').addEventListener('click', () => showDuplicates(false));
$('dup-suggest-q').addEventListener('click', () => applyDuplicates({ action: 'quarantine', tier: $('tier').value || 'exact' }));
$('dup-suggest-h').addEventListener('click', () => applyDuplicates({ action: 'hardlink', tier: $('tier').value || 'exact' }));
$('dup-page').addEventListener('click', () => {
  const remove = pageChoice();
  if (!remove.length) return note('dupnote', 'Nothing to remove on this page.');
  applyDuplicates({ action: 'quarantine', remove });
});

// ---- jobs: live by server-sent events ----

const jobs = { list: [], waiters: new Map() };
function summary(j) {
  const p = j.progress;
  const last = (j.messages || []).slice(-1)[0];
  return (p ? `${p.done}/${p.total || '?'} ${p.unit}${p.failed ? `, ${p.failed} failed` : ''}` : '') + (last ? ` — ${last.message}` : '');
}
// Resolves with the job (and its result) once it has ended: told by the event stream, or
// found by asking every 2 s should the stream be down.
function waitJob(id) {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (v) => { if (!settled) { settled = true; clearInterval(poll); resolve(v); } };
    let misses = 0;
    const poll = setInterval(() => {
      getJson(`/jobs/${id}`).then((j) => { misses = 0; if (!['queued', 'running'].includes(j.state)) finish(j); })
        .catch((err) => { if (++misses >= 5) finish({ id, state: 'failed', messages: [{ level: 'error', message: err.message }] }); });
    }, 2000);
    const j = jobs.list.find((x) => x.id === id);
    if (j && !['queued', 'running'].includes(j.state)) return finish(getJson(`/jobs/${id}`));
    jobs.waiters.set(id, finish);
  });
}
function renderJobs() {
  const box = $('joblist');
  box.textContent = '';
  const active = jobs.list.filter((j) => j.state === 'queued' || j.state === 'running').length;
  $('jobcount').textContent = active ? `(${active})` : '';
  for (const j of jobs.list.slice(0, 50)) {
    const p = j.progress || {};
    const frac = j.state === 'done' ? 1 : p.total ? Math.min(1, p.done / p.total) : 0;
    const bar = el('div', { className: 'bar' }, el('div'));
    bar.firstChild.style.width = (frac * 100).toFixed(1) + '%';
    const card = el('div', { className: `job ${j.state}` },
      el('div', { textContent: `#${j.id} ${j.title} — ${j.state}` + (p.rate ? ` — ${p.rate.toFixed(1)} ${p.unit}/s` : '') + (p.eta_s !== undefined && j.state === 'running' ? `, ${p.eta_s} s left` : '') }),
      bar,
      el('div', { className: 'progress', textContent: p.total !== undefined ? `${p.done} / ${p.total} ${p.unit}${p.failed ? `, ${p.failed} failed` : ''}` : '' }),
      el('div', { className: 'msgs', textContent: (j.messages || []).slice(-5).map((m) => `${m.level}: ${m.message}`).join('\n') }));
    card.dataset.job = j.id;
    card.dataset.state = j.state;
    if (j.state === 'queued' || j.state === 'running')
      card.append(el('button', { textContent: 'Cancel', onclick: () => post(`/jobs/${j.id}/cancel`).catch((e) => alert(e.message)) }));
    box.append(card);
  }
}
function listen() {
  const es = new EventSource(api + '/events');
  es.addEventListener('jobs', (e) => {
    jobs.list = JSON.parse(e.data).jobs;
    renderJobs();
    for (const j of jobs.list) {
      const w = jobs.waiters.get(j.id);
      if (w && !['queued', 'running'].includes(j.state)) {
        jobs.waiters.delete(j.id);
        w(getJson(`/jobs/${j.id}`));
        if (current === 'jobs') showRuns();
      }
    }
    // A job that ended since the last event: what it changed shows at once on the timeline
    // (unless the grid holds search results).
    const ended = jobs.list.filter((j) => !['queued', 'running'].includes(j.state)).map((j) => j.id);
    const fresh = jobs.ended && ended.some((id) => !jobs.ended.has(id));
    jobs.ended = new Set(ended);
    if (fresh && current === 'timeline' && grid.source instanceof TimelineSource) showTimeline(true).catch(() => {});
  });
  es.onerror = () => { es.close(); setTimeout(listen, 2000); };
}

function syncKind() {
  const kind = $('job-kind').value;
  for (const e of document.querySelectorAll('.k-describe')) e.hidden = kind !== 'describe';
  for (const e of document.querySelectorAll('.k-convert')) e.hidden = kind !== 'convert';
}
$('job-kind').addEventListener('change', syncKind);
syncKind();
$('job-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const kind = $('job-kind').value;
  const body = { kind, paths: lines('job-paths') };
  if (kind === 'describe') {
    for (const [k, id] of [['llm', 'job-llm'], ['llm_model', 'job-llm-model'], ['base_url', 'job-base-url']])
      if ($(id).value.trim()) body[k] = $(id).value.trim();
  }
  if (kind === 'convert') { body.output = $('job-output').value.trim(); body.chain = $('job-chain').value.trim(); }
  try {
    const j = await post('/jobs', body);
    note('job-note', `Job ${j.id} started.`);
  } catch (err) {
    note('job-note', err.message, true);
  }
});

async function showRuns() {
  try {
    const r = await getJson('/runs');
    const t = $('runs');
    t.textContent = '';
    t.append(el('tr', {}, ...['Run', 'Command', 'State', 'Files', 'Done', 'Skipped', 'Failed', ''].map((h) => el('th', { textContent: h }))));
    for (const run of r.runs.slice(0, 100)) {
      const act = el('td');
      if (run.state === 'planned' || run.state === 'applying')
        act.append(el('button', { textContent: 'Apply', onclick: () => post(`/runs/${run.id}/apply`).then(showRuns).catch((e) => note('job-note', e.message, true)) }));
      if (run.state === 'applied' || run.state === 'applying' || run.state === 'undoing')
        act.append(el('button', { textContent: 'Undo', onclick: () => undoRun(run.id, 'job-note') }));
      if (run.state === 'undone')
        act.append(el('button', { textContent: 'Redo', onclick: () => post(`/runs/${run.id}/redo`).then(showRuns).catch((e) => note('job-note', e.message, true)) }));
      t.append(el('tr', {}, ...[run.id, run.command, run.state, run.files, run.done, run.skipped, run.failed].map((v) => el('td', { textContent: String(v) })), act));
    }
  } catch (err) {
    note('job-note', err.message, true);
  }
}

// ---- organize: the plan as the destination tree, then apply and undo ----

const org = { run: 0 };
$('org-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('org-apply').hidden = $('org-undo').hidden = true;
  $('org-tree').textContent = '';
  const body = { kind: 'organize', paths: lines('org-paths'), into: $('org-into').value.trim(), template: $('org-template').value.trim(), mode: $('org-mode').value };
  try {
    const j = await post('/jobs', body);
    note('org-note', `Planning (job ${j.id})…`);
    const done = await waitJob(j.id);
    const plan = done.result;
    if (done.state !== 'done' || !plan || typeof plan !== 'object') throw new Error(`planning ${done.state}: ${summary(done)}`);
    org.run = plan.run;
    const files = plan.operations.filter((o) => o.op !== 'mkdir');
    note('org-note', `Plan (run ${plan.run}): ${plan.photos} photos, ${plan.folders} new folders, ${plan.renamed} renamed, ${plan.identical} identical already there, ${plan.in_place} in place.`);
    renderTree($('org-into').value.trim(), files);
    $('org-apply').hidden = !plan.run || !files.some((o) => o.state === 'pending');
  } catch (err) {
    note('org-note', err.message, true);
  }
});

function renderTree(into, ops) {
  const root = { dirs: new Map(), files: [] };
  for (const o of ops) {
    let rel = o.dst.startsWith(into) ? o.dst.slice(into.length) : o.dst;
    const parts = rel.split('/').filter(Boolean);
    let node = root;
    for (const p of parts.slice(0, -1)) {
      if (!node.dirs.has(p)) node.dirs.set(p, { dirs: new Map(), files: [] });
      node = node.dirs.get(p);
    }
    node.files.push(o);
  }
  const count = (n) => n.files.length + [...n.dirs.values()].reduce((a, d) => a + count(d), 0);
  const draw = (n, parent) => {
    for (const [name, d] of [...n.dirs.entries()].sort()) {
      const det = el('details', {}, el('summary', { textContent: `${name}/ (${count(d)})` }));
      draw(d, det);
      parent.append(det);
    }
    for (const f of n.files.slice(0, 200))
      parent.append(el('div', { className: 'file', textContent: `${f.dst.split('/').pop()} ← ${f.src || ''}${f.state !== 'pending' ? ' [' + f.state + ']' : ''}` }));
    if (n.files.length > 200) parent.append(el('div', { className: 'file', textContent: `… and ${n.files.length - 200} more` }));
  };
  const top = el('div', { className: 'tree' }, el('div', { textContent: into + '/' }));
  draw(root, top);
  $('org-tree').append(top);
}

$('org-apply').addEventListener('click', async () => {
  try {
    const r = await post(`/runs/${org.run}/apply`);
    note('org-note', `Applying run ${org.run} (job ${r.job})…`);
    $('org-apply').hidden = true;
    const j = await waitJob(r.job);
    note('org-note', `Run ${org.run} ${j.state}: ${summary(j)}`, j.state !== 'done');
    $('org-undo').hidden = false;
  } catch (err) {
    note('org-note', err.message, true);
  }
});
$('org-undo').addEventListener('click', () => { $('org-undo').hidden = true; undoRun(org.run, 'org-note'); });

listen();
tab('timeline');
