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
    this.sections = t.months.map((m, i) => ({ label: monthLabel(m), offset: t.offsets[i], count: t.counts[i] }));
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

class ListSource {
  constructor(label, ids) {
    this.total = ids.length;
    this.ids = ids;
    this.sections = [{ label: `${label} (${ids.length})`, offset: 0, count: ids.length }];
  }
  entry(i) { return i < this.ids.length ? { id: this.ids[i], kind: 'p' } : null; }
  want() {}
}

function monthLabel(m) {
  if (!m) return 'Undated';
  const [y, mo] = m.split('-').map(Number);
  return new Date(Date.UTC(y, mo - 1, 1)).toLocaleString(undefined, { month: 'long', year: 'numeric', timeZone: 'UTC' });
}

// The grid: square cells, a header per section, only the rows on screen (and one screen either
// side) exist as elements; an image is requested only while its cell is on screen.
class Grid {
  constructor() {
    this.source = null;
    this.cells = new Map();   // index -> element
    this.heads = new Map();   // section -> element
    this.queued = false;
    scroller.addEventListener('scroll', () => this.schedule(), { passive: true });
    window.addEventListener('resize', () => { this.layout(); this.schedule(); });
    layer.addEventListener('click', (e) => {
      const cell = e.target.closest('.cell');
      if (cell) viewer.open(Number(cell.dataset.index));
    });
  }
  setSource(s) {
    this.source = s;
    for (const el of this.cells.values()) this.recycle(el);
    this.cells.clear();
    for (const el of this.heads.values()) el.remove();
    this.heads.clear();
    this.layout();
    scroller.scrollTop = 0;
    this.schedule();
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
    return this.height === this.spacerHeight ? scroller.scrollTop : (scroller.scrollTop / real) * virt;
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
    // The layer follows the scroll position: elements are placed relative to `top`.
    const base = scroller.scrollTop;
    layer.style.transform = `translateY(${base}px)`;
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
      head.style.top = (t - top) + 'px';
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
          el.style.transform = `translate(${c * this.size}px, ${t + HEADER + r * this.size - top}px)`;
          this.fill(el, i, t + HEADER + r * this.size - top, view);
        }
      }
    }
    for (const [i, el] of this.cells) if (!wanted.has(i)) { this.recycle(el); this.cells.delete(i); }
    for (const [k, el] of this.heads) if (!heads.has(k)) { el.remove(); this.heads.delete(k); }
    if (lo < hi) s.want(lo, hi, () => this.schedule());
    this.moveScrubber(top);
  }
  make(i) {
    const el = document.createElement('div');
    el.className = 'cell';
    el.dataset.index = i;
    el.style.width = el.style.height = (this.size - GAP) + 'px';
    layer.appendChild(el);
    return el;
  }
  // The image only while the cell is on screen; leaving it (src removed) cancels its request.
  fill(el, i, y, view) {
    const onScreen = y + this.size > 0 && y < view;
    const e = this.source.entry(i);
    let img = el.firstChild;
    if (!e || !onScreen) {
      if (img && !img.complete) { img.removeAttribute('src'); img.remove(); }
      return;
    }
    el.classList.toggle('v', e.kind === 'v');
    el.dataset.id = e.id;
    if (!img) {
      img = new Image();
      img.decoding = 'async';
      img.alt = '';
      img.src = `${api}/assets/${e.id}/thumbnail`;
      el.appendChild(img);
    }
  }
  recycle(el) {
    const img = el.firstChild;
    if (img) img.removeAttribute('src');
    el.remove();
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
      const year = sec.label.slice(-4);
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
    $('viewer').hidden = false;
    const stage = $('stage');
    stage.textContent = '';
    $('shots').textContent = '';
    $('info').textContent = 'Loading…';
    getJson(`/assets/${e.id}`).then((d) => this.show(d)).catch((err) => { $('info').textContent = err.message; });
  },
  show(d) {
    const stage = $('stage');
    if (d.media === 'video') {
      const v = document.createElement('video');
      v.controls = true;
      v.preload = 'metadata';
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

async function showTimeline() {
  const t = await getJson('/timeline');
  grid.setSource(new TimelineSource(t));
  status.textContent = `${t.total.toLocaleString()} items`;
}

$('search').addEventListener('submit', async (e) => {
  e.preventDefault();
  const body = { q: $('q').value.trim(), media: $('media').value, from: $('from').value, to: $('to').value, limit: 500 };
  if (!body.q && !body.media && !body.from && !body.to) return showTimeline();
  try {
    const r = await fetch(api + '/search', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-Lumen-Token': token },
      body: JSON.stringify(body),
    });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error || r.statusText);
    grid.setSource(new ListSource(body.q ? `“${body.q}”` : 'Matches', j.ids));
    status.textContent = `${j.ids.length} results`;
  } catch (err) {
    status.textContent = err.message;
  }
});
$('home').addEventListener('click', (e) => { e.preventDefault(); $('q').value = ''; showTimeline(); });

showTimeline().catch((err) => { status.textContent = err.message; });
