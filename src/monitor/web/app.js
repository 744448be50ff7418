// The galaxies web view: polls this master's /status.json and keeps the page in step with it.
// Every string in the snapshot may come from another machine (hostnames, addresses), so text goes
// into the page through textContent and attributes only: no HTML is ever built from data.
'use strict';

const POLL_MS = 1000;
const MAX_BACKOFF_MS = 10000;
const FETCH_TIMEOUT_MS = 5000;

const state = {
  polls: 0,
  failures: 0,
  lostSince: 0,
  // Cumulative counters of the previous snapshot, by key, to turn them into rates.
  previous: new Map(),
  previousMs: 0,
};

// ---- small helpers ---------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const list = (x) => (Array.isArray(x) ? x : []);
const str = (x) => (typeof x === 'string' ? x : typeof x === 'number' ? String(x) : '');
const num = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
const shortId = (id) => str(id).slice(0, 8);

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

// Writes only what changed, so that an unchanged page is left alone (no flicker, selection kept).
function setText(e, text) {
  if (e.textContent !== text) e.textContent = text;
}
function setAttr(e, name, value) {
  if (value === '' || value === undefined) {
    if (e.hasAttribute(name)) e.removeAttribute(name);
  } else if (e.getAttribute(name) !== value) {
    e.setAttribute(name, value);
  }
}

// Keeps parent's children in the order of `items`, one element per key: existing ones are
// updated in place, new ones made, vanished ones removed.
function sync(parent, items, keyOf, make, update) {
  const old = new Map();
  for (const child of parent.children) old.set(child.dataset.key, child);
  let cursor = parent.firstElementChild;
  for (const item of items) {
    const key = keyOf(item);
    let e = old.get(key);
    if (e) {
      old.delete(key);
    } else {
      e = make(item);
      e.dataset.key = key;
    }
    update(e, item);
    if (e === cursor) cursor = cursor.nextElementSibling;
    else parent.insertBefore(e, cursor);
  }
  for (const e of old.values()) e.remove();
}

function pad(n, width = 2) {
  return String(n).padStart(width, '0');
}
function clock(ms, millis) {
  if (!ms) return '–';
  const d = new Date(ms);
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return millis ? `${hms}.${pad(d.getMilliseconds(), 3)}` : hms;
}
function bytes(n) {
  if (n < 1024) return `${Math.round(n)} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  do {
    n /= 1024;
    ++i;
  } while (n >= 1024 && i < units.length - 1);
  return `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}
function count(n) {
  return n < 10 ? n.toFixed(1) : String(Math.round(n));
}

// ---- rates -----------------------------------------------------------------------------------

// Per-second rates of the counters of `obj` since the previous snapshot; null where unknown (the
// first poll, or a counter that went back: a new link or a restarted process).
function rates(key, obj, nowMs, next) {
  const cur = {
    frames_in: num(obj.frames_in),
    frames_out: num(obj.frames_out),
    bytes_in: num(obj.bytes_in),
    bytes_out: num(obj.bytes_out),
  };
  next.set(key, cur);
  const prev = state.previous.get(key);
  const seconds = (nowMs - state.previousMs) / 1000;
  const out = {};
  for (const name of Object.keys(cur)) {
    const delta = prev ? cur[name] - prev[name] : -1;
    out[name] = prev && seconds > 0 && delta >= 0 ? delta / seconds : null;
  }
  return out;
}
const rateText = (r, fmt) => (r === null ? '–' : fmt(r));

// ---- sections --------------------------------------------------------------------------------

function renderHeader(s) {
  setText($('cluster'), str(s.cluster));
  const title = `galaxies · ${str(s.cluster)} · ${str(s.hostname) || shortId(s.host)}`;
  if (document.title !== title) document.title = title;
  const self = [shortId(s.host), str(s.hostname), str(s.address)].filter(Boolean).join('  ·  ');
  setText($('self'), self);
  setAttr($('self'), 'title', str(s.host));
  setText($('updated'), clock(num(s.generated_ms) || Date.now()));
  const c = s.counters && typeof s.counters === 'object' ? s.counters : {};
  setText($('totals'), `${num(c.forwarded)} forwarded · ${num(c.dropped)} dropped · ` +
                        `${bytes(num(s.queued_bytes))} queued · ${num(s.connections)} connections`);
}

function makeCard() {
  const card = el('article', 'card');
  const head = el('header');
  head.append(el('h3', 'id'), el('span', 'badge'));
  card.append(head, el('p', 'where muted'), el('ul', 'workers'));
  return card;
}

function updateCard(card, h) {
  card.dataset.host = h.id;
  card.title = h.id;
  card.classList.toggle('self', h.self);
  setText(card.querySelector('.id'), shortId(h.id) + (h.self ? ' (this host)' : ''));
  const badge = card.querySelector('.badge');
  setText(badge, h.state);
  badge.dataset.state = h.state;
  setText(card.querySelector('.where'), [h.hostname, h.address].filter(Boolean).join('  ·  '));
  sync(card.querySelector('.workers'), h.workers, (w) => w.key, makeWorker, updateWorker);
}

function makeWorker() {
  const li = el('li', 'worker');
  li.append(el('span', 'label'), el('span', 'pid'), el('span', 'node mono'), el('span', 'state'),
            el('span', 'extra muted'));
  return li;
}

function updateWorker(li, w) {
  setAttr(li, 'data-pid', w.pid ? String(w.pid) : '');
  setAttr(li, 'data-node', w.node);
  setAttr(li, 'title', w.node);
  setText(li.querySelector('.label'), w.label);
  setText(li.querySelector('.pid'), w.pid ? `pid ${w.pid}` : 'no process');
  setText(li.querySelector('.node'), shortId(w.node));
  const st = li.querySelector('.state');
  setText(st, w.state);
  st.dataset.state = w.state;
  setText(li.querySelector('.extra'), w.extra);
}

// This host's workers: the supervisor's slots joined with the router's nodes (by pid, else slot);
// then the nodes attached from outside.
function localWorkers(s, nowMs, next) {
  const nodes = list(s.nodes);
  const used = new Set();
  const out = [];
  const describe = (n) => {
    if (!n) return '';
    const r = rates(`node:${str(n.node)}`, n, nowMs, next);
    return `${rateText(r.frames_in, count)}/${rateText(r.frames_out, count)} msgs/s in/out` +
           (num(n.queued_bytes) ? ` · ${bytes(num(n.queued_bytes))} queued` : '');
  };
  for (const w of list(s.workers)) {
    const pid = num(w.pid);
    const n = nodes.find((x) => !used.has(x) && pid && num(x.pid) === pid) ||
              nodes.find((x) => !used.has(x) && x.kind === 'worker' && 'slot' in x &&
                                num(x.slot) === num(w.slot) && (!pid || num(x.pid) === pid));
    if (n) used.add(n);
    const restarts = num(w.restarts);
    out.push({
      key: `slot:${num(w.slot)}`,
      label: `#${num(w.slot)}`,
      pid,
      node: n ? str(n.node) : '',
      state: str(w.state) || 'unknown',
      extra: [restarts ? `${restarts} restart${restarts === 1 ? '' : 's'}` : '', describe(n)]
                 .filter(Boolean).join(' · '),
    });
  }
  // Without a `workers` list (an older master) the nodes are all there is to show.
  for (const n of nodes) {
    if (used.has(n)) continue;
    const attached = n.kind === 'attached';
    out.push({
      key: `node:${str(n.node)}`,
      label: attached ? 'attached' : `#${'slot' in n ? num(n.slot) : '?'}`,
      pid: num(n.pid),
      node: str(n.node),
      state: attached ? '' : 'running',
      extra: describe(n),
    });
  }
  return out;
}

function renderHosts(s, nowMs, next) {
  const hosts = [{
    id: str(s.host),
    self: true,
    state: 'this host',
    hostname: str(s.hostname),
    address: str(s.address),
    workers: localWorkers(s, nowMs, next),
  }];
  for (const p of list(s.peers)) {
    hosts.push({
      id: str(p.host),
      self: false,
      state: str(p.state) || 'unknown',
      hostname: str(p.hostname),
      address: str(p.address),
      workers: list(p.remote_nodes).map((n) => ({
        key: `node:${str(n.node)}`,
        label: 'node',
        pid: num(n.pid),
        node: str(n.node),
        state: '',
        extra: '',
      })),
    });
  }
  sync($('hosts'), hosts, (h) => `host:${h.id}`, makeCard, updateCard);
}

function makeRow(cells) {
  const tr = el('tr');
  for (const c of cells) tr.append(el('td', c));
  return tr;
}

function renderLinks(s, nowMs, next) {
  const peers = list(s.peers);
  const rows = peers.map((p) => {
    const linked = p.state === 'linked';
    const r = linked ? rates(`link:${str(p.host)}`, p, nowMs, next) : {};
    const or = (x, f) => (linked ? rateText(x, f) : '–');
    return {
      id: str(p.host),
      cells: [
        shortId(p.host), str(p.state),
        or(r.frames_in, count), or(r.frames_out, count),
        or(r.bytes_in, (b) => `${bytes(b)}/s`), or(r.bytes_out, (b) => `${bytes(b)}/s`),
        linked ? bytes(num(p.queued_bytes)) : '–',
        linked && 'rtt_us' in p ? `${(num(p.rtt_us) / 1000).toFixed(1)} ms` : '–',
        linked ? String(num(p.reconnects)) : '–',
      ],
    };
  });
  const classes = ['mono', 'state', 'num', 'num', 'num', 'num', 'num', 'num', 'num'];
  sync($('links').tBodies[0], rows, (r) => `link:${r.id}`, () => makeRow(classes), (tr, r) => {
    tr.dataset.host = r.id;
    tr.title = r.id;
    r.cells.forEach((text, i) => setText(tr.cells[i], text));
    tr.cells[1].dataset.state = r.cells[1];
  });
  $('no-links').hidden = rows.length > 0;
}

// The largest groups (the master names 32) and how many there are in all.
function renderGroups(s) {
  const g = s.groups && typeof s.groups === 'object' ? s.groups : {};
  const largest = list(g.largest);
  const total = num(g.count);
  setText($('groups-total'), largest.length < total
    ? `the ${largest.length} largest of ${total}, ${num(g.memberships)} memberships`
    : `${total}, ${num(g.memberships)} memberships`);
  sync($('groups').tBodies[0], largest, (r) => `group:${str(r.group)}`,
       () => makeRow(['mono', 'num', 'num']), (tr, r) => {
         const cells = [str(r.group), String(num(r.members)), String(num(r.local))];
         cells.forEach((text, i) => setText(tr.cells[i], text));
         tr.dataset.group = str(r.group);
       });
  $('no-groups').hidden = largest.length > 0;
}

function renderEvents(s) {
  const events = list(s.events).slice().reverse();
  const classes = ['mono', 'event', 'mono', 'mono', 'num', 'reason'];
  sync($('events').tBodies[0], events, (e) => `event:${num(e.seq)}`, () => makeRow(classes),
       (tr, e) => {
         // How a worker ended, where its own master knew it: "killed by signal 9".
         const how = str(e.exit) && e.exit !== 'unknown' ? ` (${str(e.exit)})` : '';
         const cells = [clock(num(e.time_ms), true), str(e.event), shortId(e.host), shortId(e.node),
                        num(e.pid) ? String(num(e.pid)) : '', str(e.reason) + how];
         cells.forEach((text, i) => setText(tr.cells[i], text));
         setAttr(tr.cells[2], 'title', str(e.host));
         setAttr(tr.cells[3], 'title', str(e.node));
         // Not data-pid: that names a live worker, and a departed one must not look like one.
         tr.dataset.event = str(e.event);
         setAttr(tr, 'data-event-pid', num(e.pid) ? String(num(e.pid)) : '');
         setAttr(tr, 'data-reason', str(e.reason));
       });
}

function render(s) {
  const nowMs = num(s.generated_ms) || Date.now();
  const next = new Map();
  renderHeader(s);
  renderHosts(s, nowMs, next);
  renderLinks(s, nowMs, next);
  renderGroups(s);
  renderEvents(s);
  state.previous = next;
  state.previousMs = nowMs;
}

// ---- polling ---------------------------------------------------------------------------------

function showConnection(ok, retryMs) {
  const c = $('connection');
  document.body.classList.toggle('stale', !ok);
  c.dataset.state = ok ? 'live' : 'lost';
  setText(c, ok ? 'live'
                : `connection lost since ${clock(state.lostSince)}; ` +
                  `retrying every ${Math.round(retryMs / 1000)} s`);
}

async function poll() {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
  let delay = POLL_MS;
  try {
    const reply = await fetch('/status.json', {cache: 'no-store', signal: abort.signal});
    if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
    const snapshot = await reply.json();
    if (!snapshot || typeof snapshot !== 'object') throw new Error('not a JSON object');
    render(snapshot);
    state.failures = 0;
    state.lostSince = 0;
    document.body.dataset.polls = String(++state.polls);
    showConnection(true);
  } catch (err) {
    // The master may be restarting or gone: keep trying, less often, and never reload the page.
    state.failures += 1;
    if (!state.lostSince) state.lostSince = Date.now();
    delay = Math.min(POLL_MS * 2 ** state.failures, MAX_BACKOFF_MS);
    showConnection(false, delay);
    console.warn('status poll failed:', err);
  } finally {
    clearTimeout(timer);
  }
  setTimeout(poll, delay);
}

document.body.dataset.polls = '0';
poll();
