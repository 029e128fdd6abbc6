// Waybill console: a small single-page app over the /v1 API. No framework, no build step.
// The page holds no data of its own: every view is one or a few paged API calls, made
// with the operator's API key (kept in sessionStorage for this tab only).
'use strict';

(function () {
  const KEY = 'waybill.apiKey';
  const PAGE = 50;

  // ---------------------------------------------------------------- DOM helpers

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'testid') el.dataset.testid = v;
        else if (k === 'dataset') Object.assign(el.dataset, v);
        else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else if (k === 'value') el.value = v;
        else if (k === 'checked' || k === 'disabled' || k === 'selected') el[k] = !!v;
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    add(el, kids);
    return el;
  }

  function add(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      el.append(k instanceof Node ? k : String(k));
    }
    return el;
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'testid') el.setAttribute('data-testid', v);
      else el.setAttribute(k, String(v));
    }
    add(el, kids);
    return el;
  }

  function link(text, hash, attrs) {
    return h('a', Object.assign({ href: hash }, attrs || {}), text);
  }

  function hashOf(parts, query) {
    let out = '#/' + parts.map((p) => encodeURIComponent(String(p))).join('/');
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v !== null && v !== undefined && v !== '') q.set(k, v);
      }
      const qs = q.toString();
      if (qs) out += '?' + qs;
    }
    return out;
  }

  // ---------------------------------------------------------------- formatting

  function pad(n, w) { return String(n).padStart(w || 2, '0'); }

  function fmtTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds()) + 'Z';
  }

  function clock(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return '';
    return pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds());
  }

  function fmtDuration(sec) {
    if (sec === null || sec === undefined || isNaN(sec)) return '—';
    sec = Math.max(0, Math.round(Number(sec)));
    if (sec < 60) return sec + ' s';
    if (sec < 3600) return Math.floor(sec / 60) + ' min ' + (sec % 60) + ' s';
    if (sec < 86400) return Math.floor(sec / 3600) + ' h ' + Math.floor((sec % 3600) / 60) + ' min';
    return Math.floor(sec / 86400) + ' d ' + Math.floor((sec % 86400) / 3600) + ' h';
  }

  function ago(iso) {
    if (!iso) return h('span', { class: 'faint' }, 'never');
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    const sec = (Date.now() - d.getTime()) / 1000;
    const text = sec < 5 ? 'just now' : fmtDuration(sec) + ' ago';
    return h('span', { title: fmtTime(iso) }, text);
  }

  function fmtMs(ms) {
    const n = Number(ms);
    if (isNaN(n)) return '—';
    if (n >= 1000) return (n / 1000).toFixed(n >= 10000 ? 0 : 1) + ' s';
    return (n >= 10 ? Math.round(n) : Math.round(n * 10) / 10) + ' ms';
  }

  function fmtNum(n) {
    if (n === null || n === undefined) return '—';
    return Number(n).toLocaleString('en-US');
  }

  function fmtRate(n) {
    if (n === null || n === undefined || isNaN(n)) return '—';
    n = Number(n);
    return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(n >= 10 ? 1 : 2);
  }

  function sourceName(src) {
    return String(src || '').replace(/^\/sources\//, '');
  }

  function pretty(text) {
    if (typeof text !== 'string') return JSON.stringify(text, null, 2);
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (_) { return text; }
  }

  function badge(text, kind, attrs) {
    return h('span', Object.assign({ class: 'badge ' + (kind || '') }, attrs || {}), text);
  }

  const STATE_KIND = {
    delivered: 'ok', returned: 'warn', cancelled: 'warn', created: 'plain',
  };
  function milestoneBadge(m, attrs) { return badge(m || 'created', STATE_KIND[m] || 'info', attrs); }
  const CIRCUIT_KIND = { closed: 'ok', half_open: 'warn', open: 'bad' };
  function circuitBadge(c, attrs) {
    return badge(c === 'half_open' ? 'half-open' : (c || 'unknown'), CIRCUIT_KIND[c] || '', attrs);
  }
  const DELIVERY_KIND = { delivered: 'ok', pending: 'info', dead: 'bad' };
  const DL_KIND = { open: 'bad', replayed: 'ok', discarded: '' };
  const INBOX_KIND = { accepted: 'ok', rejected: 'bad', duplicate: 'info' };

  function dlState(d) {
    if (d.state) return d.state;
    if (d.discarded_at) return 'discarded';
    if (d.replayed_at) return 'replayed';
    return 'open';
  }

  function empty(title, text, testid) {
    return h('div', { class: 'empty', testid: testid || 'empty' },
      h('div', { class: 'title' }, title), text ? h('div', null, text) : null);
  }

  function panel(title, body, opts) {
    opts = opts || {};
    return h('section', { class: 'panel', testid: opts.testid },
      h('div', { class: 'panel-head' }, h('h2', null, title), opts.right || null),
      body);
  }

  function table(headers, rows) {
    return h('div', { class: 'table-wrap' },
      h('table', null,
        h('thead', null, h('tr', null, headers.map((c) => {
          const [label, cls] = Array.isArray(c) ? c : [c, ''];
          return h('th', { class: cls }, label);
        }))),
        h('tbody', null, rows)));
  }

  function kv(pairs) {
    const dl = h('dl', { class: 'kv' });
    for (const [k, v, testid] of pairs) {
      if (v === null || v === undefined) continue;
      dl.append(h('dt', null, k), h('dd', { testid: testid }, v));
    }
    return dl;
  }

  function pageHead(title, sub, right, crumbs) {
    return h('div', { class: 'page-head' },
      h('div', null,
        crumbs ? h('div', { class: 'crumbs' }, crumbs) : null,
        h('h1', { testid: 'page-title' }, title),
        sub ? h('div', { class: 'sub' }, sub) : null),
      right ? h('div', { class: 'actions' }, right) : null);
  }

  // ---------------------------------------------------------------- toasts & modals

  function toast(kind, title, detail, code) {
    const box = document.getElementById('toasts');
    const close = h('button', { class: 't-close', type: 'button', 'aria-label': 'Dismiss' }, '×');
    const el = h('div', { class: 'toast ' + kind, testid: 'toast', role: kind === 'error' ? 'alert' : 'status' },
      h('div', { class: 't-body' },
        h('div', { class: 't-title', testid: 'toast-title' }, title),
        detail ? h('div', { testid: 'toast-detail' }, detail) : null,
        code ? h('div', { class: 't-code', testid: 'toast-code' }, code) : null),
      close);
    close.addEventListener('click', () => el.remove());
    box.append(el);
    while (box.children.length > 4) box.firstChild.remove();
    setTimeout(() => el.remove(), kind === 'error' ? 12000 : 6000);
  }

  function showError(e) {
    if (!e || e.name === 'AbortError') return;
    if (e instanceof ApiError) {
      toast('error', e.problem.title || 'HTTP ' + e.status, e.problem.detail || '', e.problem.code || '');
    } else {
      toast('error', 'Something went wrong', String((e && e.message) || e));
    }
  }

  function modal(title, body, buttons, testid) {
    const root = document.getElementById('modal-root');
    const foot = h('div', { class: 'm-foot' }, buttons);
    const box = h('div', { class: 'overlay', testid: testid },
      h('div', { class: 'modal', role: 'dialog', 'aria-modal': 'true' },
        h('h2', null, title), h('div', { class: 'm-body' }, body), foot));
    root.append(box);
    return box;
  }

  function confirmDialog(title, text, okLabel, danger) {
    return new Promise((resolve) => {
      let box = null;
      const done = (v) => { box.remove(); resolve(v); };
      const ok = h('button', { class: 'btn ' + (danger ? 'danger' : 'primary'), type: 'button', testid: 'confirm-ok', onclick: () => done(true) }, okLabel);
      const cancel = h('button', { class: 'btn', type: 'button', testid: 'confirm-cancel', onclick: () => done(false) }, 'Cancel');
      box = modal(title, h('p', null, text), [cancel, ok], 'confirm-dialog');
      ok.focus();
    });
  }

  // ---------------------------------------------------------------- the API key

  let keyPrompt = null;

  function askKey(message) {
    if (keyPrompt) return keyPrompt;
    keyPrompt = new Promise((resolve) => {
      const input = h('input', { type: 'password', testid: 'api-key-input', autocomplete: 'off', placeholder: 'API key', 'aria-label': 'API key' });
      const error = h('div', { class: 'm-error', testid: 'key-error' }, message || '');
      const submit = h('button', { class: 'btn primary', type: 'submit', testid: 'api-key-submit' }, 'Continue');
      const form = h('form', null,
        h('p', null, 'Enter an API key from ', h('code', null, '[server].api_keys'),
          '. It is kept in this browser tab only and sent as a bearer token with each request.'),
        input, error);
      let box = null;
      const go = async (ev) => {
        ev.preventDefault();
        const key = input.value.trim();
        if (!key) { error.textContent = 'Enter a key.'; return; }
        submit.disabled = true;
        error.textContent = '';
        try {
          const r = await fetch('/v1/shipments?limit=1', { headers: { Authorization: 'Bearer ' + key } });
          if (r.status === 401) {
            const p = await problemOf(r);
            error.textContent = (p.detail || 'This key is not accepted.') + (p.code ? ' (' + p.code + ')' : '');
            submit.disabled = false;
            input.select();
            return;
          }
          sessionStorage.setItem(KEY, key);
          box.remove();
          keyPrompt = null;
          resolve(key);
        } catch (e) {
          error.textContent = 'The hub did not answer: ' + e.message;
          submit.disabled = false;
        }
      };
      form.addEventListener('submit', go);
      submit.addEventListener('click', go);
      box = modal('Sign in to Waybill', form, [submit], 'key-dialog');
      input.focus();
    });
    return keyPrompt;
  }

  // ---------------------------------------------------------------- the API

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && problem.detail) || 'HTTP ' + status);
      this.status = status;
      this.problem = problem || {};
    }
  }

  async function problemOf(r) {
    try {
      const j = await r.json();
      return j && typeof j === 'object' ? j : { detail: String(j) };
    } catch (_) {
      return { title: 'HTTP ' + r.status, detail: r.statusText || '', code: '' };
    }
  }

  async function authHeader() {
    let key = sessionStorage.getItem(KEY);
    if (!key) key = await askKey();
    return 'Bearer ' + key;
  }

  async function api(method, path, body, signal) {
    for (let i = 0; i < 5; i++) {
      const headers = { Authorization: await authHeader(), Accept: 'application/json' };
      const init = { method, headers, signal };
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      let r;
      try {
        r = await fetch(path, init);
      } catch (e) {
        if (e.name === 'AbortError') throw e;
        throw new ApiError(0, { title: 'Network error', detail: 'The hub did not answer (' + e.message + ').', code: 'network' });
      }
      if (r.status === 401) {
        const p = await problemOf(r);
        sessionStorage.removeItem(KEY);
        await askKey((p.detail || 'The key was refused.') + (p.code ? ' (' + p.code + ')' : ''));
        continue;
      }
      if (!r.ok) throw new ApiError(r.status, await problemOf(r));
      const text = await r.text();
      return text ? JSON.parse(text) : null;
    }
    throw new ApiError(401, { title: 'Unauthorized', detail: 'no accepted API key', code: 'api.unauthorized' });
  }

  const enc = encodeURIComponent;

  // The cursor of the next page, whichever way a listing names it (`next_after` for
  // ascending keys, `next_before` for newest-first ids): [query parameter, value].
  function nextCursor(data) {
    if (data && data.next_after !== null && data.next_after !== undefined) return ['after', data.next_after];
    if (data && data.next_before !== null && data.next_before !== undefined) return ['before', data.next_before];
    return null;
  }

  // Rows a page: 50, or `limit` from the route (1 to 500).
  function pageSize(q) {
    const n = parseInt(q.get('limit') || '', 10);
    return n >= 1 && n <= 500 ? n : PAGE;
  }

  function pagerLinks(base, query, cursorGiven, data) {
    const next = nextCursor(data);
    return h('span', { class: 'actions' },
      cursorGiven ? h('a', { class: 'btn small', href: hashOf(base, query), testid: 'page-first' }, '« First') : null,
      next ? h('a', { class: 'btn small', testid: 'page-next', href: hashOf(base, Object.assign({}, query, { [next[0]]: next[1] })) }, 'Next ›') : null);
  }

  function qs(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== null && v !== undefined && v !== '') q.set(k, v);
    }
    const t = q.toString();
    return t ? '?' + t : '';
  }

  // ---------------------------------------------------------------- router

  let current = null;

  function newPage() {
    const ctrl = new AbortController();
    const timers = [];
    const ctx = {
      signal: ctrl.signal,
      alive: () => !ctrl.signal.aborted,
      every(fn, ms) {
        const t = setInterval(() => { if (ctx.alive()) fn(); }, ms);
        timers.push(t);
      },
      render(...nodes) {
        if (!ctx.alive()) return;
        document.getElementById('main').replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));
      },
      stop() {
        ctrl.abort();
        timers.forEach(clearInterval);
      },
    };
    return ctx;
  }

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const i = raw.indexOf('?');
    const path = i >= 0 ? raw.slice(0, i) : raw;
    const q = new URLSearchParams(i >= 0 ? raw.slice(i + 1) : '');
    const parts = path.split('/').filter(Boolean).map((p) => {
      try { return decodeURIComponent(p); } catch (_) { return p; }
    });
    return { parts, q };
  }

  const ROUTES = {};

  async function route() {
    if (current) current.stop();
    const ctx = newPage();
    current = ctx;
    setLive(null);
    const { parts, q } = parseHash();
    const name = parts[0] || 'overview';
    for (const a of document.querySelectorAll('.nav a')) {
      a.classList.toggle('active', a.dataset.route === name);
    }
    ctx.render(h('div', { class: 'loading', testid: 'loading' }, 'Loading…'));
    const fn = ROUTES[name];
    try {
      if (!fn) {
        ctx.render(empty('No such page', 'Pick a page from the navigation bar.', 'not-found'));
        return;
      }
      await fn(ctx, parts.slice(1), q);
    } catch (e) {
      if (!ctx.alive() || (e && e.name === 'AbortError')) return;
      showError(e);
      const p = e instanceof ApiError ? e.problem : {};
      ctx.render(empty(p.title || 'Could not load this page', [p.detail || String(e.message || e), p.code ? ' (' + p.code + ')' : ''], 'page-error'));
    }
  }

  function go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  }

  // ---------------------------------------------------------------- live indicator

  function setLive(state) {
    const el = document.querySelector('[data-testid=live-indicator]');
    if (!el) return;
    el.hidden = state === null;
    el.classList.toggle('stale', state === 'stale');
    el.lastChild.textContent = state === 'stale' ? 'reconnecting' : 'live';
  }

  // ---------------------------------------------------------------- charts

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // A line chart of `series` (objects with `at` and numeric fields `keys`), oldest first.
  function lineChart(series, keys, width, testid) {
    const W = Math.max(320, Math.round(width || 800));
    const H = 220;
    const L = 44; const R = 12; const T = 12; const B = 26;
    const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', testid: testid });
    const n = series.length;
    let max = 0;
    for (const p of series) for (const k of keys) max = Math.max(max, Number(p[k]) || 0);
    max = niceMax(max);
    const x = (i) => L + (n <= 1 ? 0 : (i * (W - L - R)) / (n - 1));
    const y = (v) => T + (H - T - B) * (1 - v / max);
    for (let g = 0; g <= 4; g++) {
      const v = (max * g) / 4;
      svg.append(s('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      svg.append(s('text', { class: 'axis', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmtAxis(v)));
    }
    if (n > 0) {
      for (const i of [0, Math.floor((n - 1) / 2), n - 1]) {
        svg.append(s('text', { class: 'axis', x: x(i), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle' }, clock(series[i].at)));
      }
    }
    if (n >= 1) {
      for (const k of keys) {
        const pts = series.map((p, i) => [x(i), y(Number(p[k]) || 0)]);
        if (n === 1) pts.push([W - R, pts[0][1]]);
        const d = pts.map((pt, i) => (i ? 'L' : 'M') + pt[0].toFixed(1) + ' ' + pt[1].toFixed(1)).join(' ');
        const last = pts[pts.length - 1];
        svg.append(s('path', { class: 'area s-' + k, d: d + ` L${last[0].toFixed(1)} ${y(0)} L${pts[0][0].toFixed(1)} ${y(0)} Z` }));
        svg.append(s('path', { class: 'line s-' + k, d: d, 'data-series': k }));
      }
    }
    return svg;
  }

  // At least `n` ten-second buckets: a young hub's few buckets are drawn after quiet ones
  // (it recorded nothing before it started), so the chart reads as a time window.
  function padSeries(series, n) {
    if (!series.length || series.length >= n) return series;
    const first = new Date(series[0].at).getTime();
    if (isNaN(first)) return series;
    const pad = [];
    for (let i = n - series.length; i > 0; i--) {
      pad.push({ at: new Date(first - i * 10000).toISOString(), ingested: 0, delivered: 0, failed: 0 });
    }
    return pad.concat(series);
  }

  function fmtAxis(v) {
    if (v >= 1000000) return (v / 1000000).toFixed(1).replace(/\.0$/, '') + 'M';
    if (v >= 1000) return (v / 1000).toFixed(1).replace(/\.0$/, '') + 'k';
    return String(Math.round(v * 100) / 100);
  }

  function legend(keys) {
    return h('div', { class: 'legend' }, keys.map((k) => h('span', null, h('span', { class: 'sw s-' + k }), k)));
  }

  // ---------------------------------------------------------------- SSE over fetch

  // Reads `/v1/stream` with the key in a header (EventSource cannot send one), parses the
  // frames and calls `on(event, data)`; reconnects when the stream drops. Resolves when
  // the page is left.
  async function stream(ctx, on, onState) {
    while (ctx.alive()) {
      const conn = new AbortController();
      const stopConn = () => conn.abort();
      ctx.signal.addEventListener('abort', stopConn);
      let watchdog = null;
      try {
        const r = await fetch('/v1/stream', {
          headers: { Authorization: await authHeader(), Accept: 'text/event-stream' },
          signal: conn.signal,
        });
        if (r.status === 401) {
          await api('GET', '/v1/overview', undefined, ctx.signal); // prompts for a key
          continue;
        }
        if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
        onState('live');
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        let seen = Date.now();
        watchdog = setInterval(() => { if (Date.now() - seen > 15000) conn.abort(); }, 3000);
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          seen = Date.now();
          buf += dec.decode(value, { stream: true });
          let m;
          while ((m = /\r?\n\r?\n/.exec(buf))) {
            const frame = buf.slice(0, m.index);
            buf = buf.slice(m.index + m[0].length);
            let event = 'message';
            const data = [];
            for (const line of frame.split(/\r?\n/)) {
              if (!line || line.startsWith(':')) continue;
              const c = line.indexOf(':');
              const field = c < 0 ? line : line.slice(0, c);
              let val = c < 0 ? '' : line.slice(c + 1);
              if (val.startsWith(' ')) val = val.slice(1);
              if (field === 'event') event = val;
              else if (field === 'data') data.push(val);
            }
            if (data.length) on(event, data.join('\n'));
          }
        }
      } catch (e) {
        if (!ctx.alive()) return;
      } finally {
        if (watchdog) clearInterval(watchdog);
        ctx.signal.removeEventListener('abort', stopConn);
      }
      if (!ctx.alive()) return;
      onState('stale');
      await sleep(2000, ctx.signal);
    }
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }

  // ---------------------------------------------------------------- Overview

  ROUTES.overview = async (ctx) => {
    const first = await api('GET', '/v1/overview', undefined, ctx.signal);
    const val = (testid) => h('span', { testid: testid });
    const card = (label, testid, unit, hint, href) => {
      const v = val(testid);
      const c = h(href ? 'a' : 'div', { class: 'card', href: href, testid: 'card-' + testid },
        h('div', { class: 'label' }, label),
        h('div', { class: 'value' }, v, unit ? h('span', { class: 'unit' }, unit) : null),
        hint ? h('div', { class: 'hint' }, hint) : null);
      return c;
    };
    const cards = h('div', { class: 'cards' },
      card('Ingest rate', 'stat-ingest-rate', 'events/s', 'last minute'),
      card('Delivery rate', 'stat-delivery-rate', 'events/s', 'last minute'),
      card('Delivery lag', 'stat-lag', null, 'oldest pending delivery'),
      card('Outbox depth', 'stat-outbox', 'pending', null, '#/sinks'),
      card('Dead letters', 'stat-dead-letters', 'open', null, '#/dead-letters'));
    const chartBox = h('div', { class: 'panel-body', testid: 'chart-box' });
    const circuits = h('div', { testid: 'circuits' });
    const at = h('span', { class: 'muted', testid: 'overview-at' });
    ctx.render(
      pageHead('Overview', ['Throughput and delivery health, updated live · as of ', at]),
      cards,
      h('div', { class: 'grid2' },
        panel('Events per 10 seconds', chartBox, { testid: 'chart-panel', right: legend(['ingested', 'delivered', 'failed']) }),
        panel('Sinks', circuits, { right: link('All sinks →', '#/sinks') })));

    const update = (o) => {
      if (!ctx.alive() || !o) return;
      const set = (id, text) => { const e = document.querySelector(`[data-testid="${id}"]`); if (e) e.textContent = text; };
      set('stat-ingest-rate', fmtRate(o.ingest_rate));
      set('stat-delivery-rate', fmtRate(o.delivery_rate));
      set('stat-lag', fmtDuration(o.lag_seconds));
      set('stat-outbox', fmtNum(o.outbox_depth));
      set('stat-dead-letters', fmtNum(o.dead_letters));
      const dlCard = document.querySelector('[data-testid="card-stat-dead-letters"]');
      if (dlCard) dlCard.classList.toggle('bad', Number(o.dead_letters) > 0);
      const lagCard = document.querySelector('[data-testid="card-stat-lag"]');
      if (lagCard) lagCard.classList.toggle('warn', Number(o.lag_seconds) > 60);
      at.textContent = fmtTime(o.at);
      const series = padSeries(Array.isArray(o.series) ? o.series : [], 30);
      chartBox.replaceChildren(series.length
        ? lineChart(series, ['ingested', 'delivered', 'failed'], chartBox.clientWidth - 32, 'chart-throughput')
        : empty('No traffic yet', 'Events appear here as partners send them.'));
      const sinks = Array.isArray(o.sinks) ? o.sinks : [];
      circuits.replaceChildren(sinks.length
        ? table(['Sink', 'Circuit', ''], sinks.map((k) => h('tr', { testid: 'circuit-row-' + k.name },
          h('td', null, link(k.name, '#/sinks')),
          h('td', null, circuitBadge(k.circuit, { testid: 'circuit-' + k.name })),
          h('td', null, k.paused ? badge('paused', 'warn') : null))))
        : empty('No sinks', 'Configure sinks under [sinks].'));
    };
    update(first);
    stream(ctx, (event, data) => {
      if (event !== 'overview') return;
      try { update(JSON.parse(data)); } catch (_) { /* a frame cut short: the next one comes */ }
    }, (state) => {
      if (!ctx.alive()) return;
      setLive(state);
      if (state === 'stale') api('GET', '/v1/overview', undefined, ctx.signal).then(update, () => {});
    });
  };

  // ---------------------------------------------------------------- Shipments

  function searchForm(initial) {
    const input = h('input', { type: 'search', testid: 'shipment-search', value: initial || '', placeholder: 'Tracking number, picking, PRO, SSCC, order, shipment key…', 'aria-label': 'Find a shipment' });
    const form = h('form', { class: 'search', testid: 'shipment-search-form' },
      input, h('button', { class: 'btn primary', type: 'submit', testid: 'shipment-search-submit' }, 'Find'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const v = input.value.trim();
      if (v) go(hashOf(['shipments', v]));
    });
    return form;
  }

  const MILESTONES = ['created', 'released', 'picked', 'packed', 'booked', 'labelled', 'dispatched', 'in_transit',
    'out_for_delivery', 'available_for_pickup', 'delivered', 'returned', 'cancelled'];

  ROUTES.shipments = async (ctx, rest, q) => {
    if (rest.length) return shipmentPage(ctx, rest.join('/'));
    const state = q.get('state') || '';
    const after = q.get('after') || '';
    const limit = pageSize(q);
    const data = await api('GET', '/v1/shipments' + qs({ state, after, limit }), undefined, ctx.signal);
    const rows = data.shipments || [];
    const stateSel = h('select', { testid: 'shipment-state-filter', 'aria-label': 'State' },
      h('option', { value: '' }, 'Any state'),
      MILESTONES.map((m) => h('option', { value: m, selected: m === state }, m)));
    stateSel.addEventListener('change', () => go(hashOf(['shipments'], { state: stateSel.value, limit: q.get('limit') })));
    const list = rows.length
      ? table(['Shipment', 'State', 'Flags', 'Milestone at', ['Last event', ''], ['Events', 'num']],
        rows.map((r) => h('tr', { class: 'clickable', testid: 'shipment-row', dataset: { key: r.key }, onclick: () => go(hashOf(['shipments', r.key])) },
          h('td', null, link(r.key, hashOf(['shipments', r.key]), { class: 'mono' })),
          h('td', null, milestoneBadge(r.milestone)),
          h('td', null, (r.flags || []).map((f) => badge(f, 'warn'))),
          h('td', { class: 'nowrap' }, fmtTime(r.milestone_at)),
          h('td', { class: 'nowrap' }, ago(r.last_event_at)),
          h('td', { class: 'num' }, fmtNum(r.events)))))
      : empty(after ? 'No more shipments' : 'No shipments yet', state ? 'None is in state ' + state + '.' : 'Shipments appear when partners send events.', 'shipments-empty');
    const pager = h('div', { class: 'pager' },
      h('span', null, after ? ['After ', h('code', null, after)] : 'First page', ' · ', rows.length + ' shown'),
      pagerLinks(['shipments'], { state, limit: q.get('limit') }, !!after, data));
    ctx.render(
      pageHead('Shipments', 'Find any shipment by any identifier a system gave it.'),
      h('section', { class: 'panel' },
        h('div', { class: 'toolbar' }, searchForm(''), h('span', { class: 'grow' }), stateSel),
        h('div', { testid: 'shipment-list' }, list),
        pager));
  };

  async function shipmentPage(ctx, key) {
    let v;
    try {
      v = await api('GET', '/v1/shipments/' + enc(key), undefined, ctx.signal);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      const head = pageHead('Shipments', null, null, link('← All shipments', '#/shipments'));
      const box = h('section', { class: 'panel' }, h('div', { class: 'toolbar' }, searchForm(key)));
      if (e.status === 409 && e.problem.shipments) {
        box.append(h('div', { class: 'panel-body' },
          h('p', null, '“', key, '” names ', String(e.problem.shipments.length), ' shipments. Pick one:'),
          h('ul', { testid: 'ambiguous-list' }, e.problem.shipments.map((k) => h('li', null, link(k, hashOf(['shipments', k]), { class: 'mono' }))))));
        ctx.render(head, box);
        return;
      }
      if (e.status === 404) {
        box.append(empty('No shipment found', ['Nothing is known by “', key, '”. Try another identifier (tracking number, picking, PRO, SSCC, order…).'], 'search-empty'));
        ctx.render(head, box);
        return;
      }
      throw e;
    }
    const st = v.state || {};
    if (st.key && st.key !== key) history.replaceState(null, '', hashOf(['shipments', st.key]));
    const lanes = v.lanes || [];
    const summary = kv([
      ['Shipment key', h('span', { class: 'mono' }, st.key), 'shipment-key'],
      ['State', milestoneBadge(st.milestone, { testid: 'shipment-state' })],
      ['Milestone at', fmtTime(st.milestone_at)],
      ['Last event', fmtTime(st.last_event_at)],
      ['Flags', (st.flags || []).length ? h('span', { class: 'chips' }, st.flags.map((f) => badge(f, 'warn'))) : h('span', { class: 'faint' }, 'none'), 'shipment-flags'],
      ['Order', v.order ? h('span', { class: 'mono' }, v.order) : h('span', { class: 'faint' }, 'none')],
      ['Lanes', h('span', { class: 'chips' }, lanes.map((l) => h('span', { class: 'chip' }, l))), 'shipment-lanes'],
      ['Identifiers', (v.xrefs || []).length ? h('span', { class: 'chips' }, v.xrefs.map((x) => h('span', { class: 'chip' }, x.kind + ':' + x.value))) : h('span', { class: 'faint' }, 'none'), 'shipment-aliases'],
      ['Packages', (v.packages || []).length ? h('span', { class: 'chips' }, v.packages.map((p) => h('span', { class: 'chip' }, p))) : null],
    ]);
    const facts = Object.entries(v.facts || {});
    const factsTable = facts.length
      ? table(['Fact', 'Value', 'Source', 'Owner'], facts.map(([f, x]) => h('tr', { testid: 'fact-row' },
        h('td', null, f),
        h('td', { class: 'mono' }, typeof x.value === 'string' ? x.value : JSON.stringify(x.value)),
        h('td', { class: 'src' }, x.source),
        h('td', null, x.owner ? badge('owner', 'ok') : badge('provisional', 'warn')))))
      : empty('No facts stated', 'Tracking, carrier, weights and the like appear here as events state them.');
    const conflicts = v.conflicts || [];
    const conflictsPanel = conflicts.length
      ? panel('Conflicts', table(['Kind', 'Fact / alias', 'Detail', 'Recorded'], conflicts.map((c) => h('tr', { testid: 'conflict-row' },
        h('td', null, badge(c.kind, 'bad')), h('td', { class: 'mono' }, c.fact),
        h('td', { class: 'mono' }, h('span', { class: 'trunc', title: JSON.stringify(c.detail) }, JSON.stringify(c.detail))),
        h('td', { class: 'nowrap' }, fmtTime(c.recorded_at))))), { testid: 'conflicts' })
      : null;

    const timeline = (v.timeline || []).slice().reverse();
    const cells = new Map();
    const rows = timeline.map((t) => {
      const ev = t.event || {};
      const cell = h('td', { testid: 'deliveries', dataset: { event: ev.id } }, h('span', { class: 'faint' }, '…'));
      cells.set(ev.id, cell);
      return h('tr', { testid: 'timeline-row', dataset: { event: ev.id } },
        h('td', { class: 'when', testid: 'timeline-time' }, fmtTime(ev.time)),
        h('td', null, h('div', { testid: 'timeline-type' }, ev.type), h('div', { class: 'faint mono', title: 'event id' }, ev.id)),
        h('td', { class: 'src', testid: 'timeline-source' }, sourceName(ev.source)),
        lanes.length > 1 ? h('td', { class: 'mono' }, ev.subject) : null,
        h('td', null, badge(t.effect, t.effect === 'advanced' ? 'ok' : t.effect === 'flagged' ? 'warn' : 'plain')),
        h('td', { class: 'when' }, fmtTime(t.received_at)),
        cell);
    });
    const heads = ['Occurred', 'Event', 'Source'];
    if (lanes.length > 1) heads.push('Lane');
    heads.push('Effect', 'Received', 'Deliveries');
    ctx.render(
      pageHead(st.key || key, ['Shipment · ', milestoneBadge(st.milestone)], null, link('← Find another shipment', '#/shipments')),
      h('div', { class: 'grid-half' },
        panel('Summary', h('div', { class: 'panel-body' }, summary), { testid: 'shipment-summary' }),
        panel('Facts', factsTable, { testid: 'shipment-facts' })),
      conflictsPanel,
      panel('Timeline', rows.length ? h('div', { class: 'timeline' }, table(heads, rows)) : empty('No events'),
        { testid: 'timeline', right: h('span', { class: 'muted' }, timeline.length + ' events across ' + lanes.length + (lanes.length === 1 ? ' system lane' : ' system lanes') + ' · newest first') }));
    loadDeliveries(ctx, timeline.map((t) => t.event).filter((e) => e && e.id).slice(0, 300), cells);
  }

  // Each event's deliveries, four requests at a time
  // (`/v1/shipments/{lane}/events/{id}/deliveries`).
  async function loadDeliveries(ctx, events, cells) {
    let i = 0;
    const url = (ev) => '/v1/shipments/' + enc(ev.subject) + '/events/' + enc(ev.id) + '/deliveries';
    const worker = async () => {
      while (ctx.alive() && i < events.length) {
        const ev = events[i++];
        const cell = cells.get(ev.id);
        try {
          const d = await api('GET', url(ev), undefined, ctx.signal);
          cell.replaceChildren(deliveriesView(d.deliveries || []));
        } catch (e) {
          if (e && e.name === 'AbortError') return;
          cell.replaceChildren(h('span', { class: 'faint', title: e.message }, '—'));
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }

  function deliveriesView(list) {
    if (!list.length) return h('span', { class: 'faint' }, 'no subscription');
    const wrap = h('div');
    const chips = h('div', { class: 'deliv' });
    const detail = h('div', { class: 'deliv-detail', hidden: true });
    for (const d of list) {
      const b = h('button', {
        type: 'button', class: 'badge ' + (DELIVERY_KIND[d.state] || ''), testid: 'delivery',
        dataset: { sink: d.sink, state: d.state }, title: d.subscription + ': ' + (d.last_error || d.state),
      }, d.sink + ' · ' + d.state + (d.attempts > 1 ? ' · ' + d.attempts + ' attempts' : ''));
      b.addEventListener('click', () => {
        const hist = d.history || [];
        const last = [];
        if (d.last_status !== null && d.last_status !== undefined) last.push('HTTP ' + d.last_status);
        if (d.last_duration_ms !== null && d.last_duration_ms !== undefined) last.push(fmtMs(d.last_duration_ms));
        detail.replaceChildren(
          h('div', { class: 'muted', testid: 'delivery-detail' }, 'Subscription ', h('code', null, d.subscription), ' → ', h('code', null, d.sink),
            d.delivered_at ? [' · delivered ', fmtTime(d.delivered_at)] : null,
            last.length ? [' · last attempt: ', last.join(', ')] : null,
            d.last_error ? [' · last error: ', h('span', { class: 'err-text' }, d.last_error)] : null),
          hist.length ? table(['#', 'At', 'Status', ['Duration', 'num'], 'Error'], hist.map((a) => h('tr', { testid: 'delivery-attempt' },
            h('td', null, a.attempt), h('td', { class: 'nowrap' }, fmtTime(a.at)), h('td', null, a.status === null || a.status === undefined ? '—' : String(a.status)),
            h('td', { class: 'num' }, a.duration_ms === null || a.duration_ms === undefined ? '—' : fmtMs(a.duration_ms)),
            h('td', { class: 'err-text' }, a.error || '')))) : h('div', { class: 'faint' }, 'No failed attempts.'));
        detail.hidden = !detail.hidden;
      });
      chips.append(b);
    }
    wrap.append(chips, detail);
    return wrap;
  }

  // ---------------------------------------------------------------- Dead letters

  async function sinkNames(signal) {
    try {
      const d = await api('GET', '/v1/sinks', undefined, signal);
      return (d.sinks || []).map((k) => k.name);
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      return [];
    }
  }

  ROUTES['dead-letters'] = async (ctx, rest, q) => {
    if (rest.length) return deadLetterPage(ctx, rest[0]);
    const sink = q.get('sink') || '';
    const state = q.get('state') || 'open';
    const after = q.get('after') || '';
    const before = q.get('before') || '';
    const [data, sinks] = await Promise.all([
      api('GET', '/v1/dead-letters' + qs({ sink, state, after, before, limit: pageSize(q) }), undefined, ctx.signal),
      sinkNames(ctx.signal),
    ]);
    const rows = data.dead_letters || [];
    const sinkSel = h('select', { testid: 'dl-filter-sink', 'aria-label': 'Sink' },
      h('option', { value: '' }, 'All sinks'),
      (sinks.includes(sink) || !sink ? sinks : sinks.concat([sink])).map((n) => h('option', { value: n, selected: n === sink }, n)));
    const stateSel = h('select', { testid: 'dl-filter-state', 'aria-label': 'State' },
      ['open', 'replayed', 'discarded', 'all'].map((n) => h('option', { value: n, selected: n === state }, n === 'all' ? 'All states' : n)));
    const refilter = () => go(hashOf(['dead-letters'], { sink: sinkSel.value, state: stateSel.value }));
    sinkSel.addEventListener('change', refilter);
    stateSel.addEventListener('change', refilter);
    const replayAll = h('button', { class: 'btn primary', type: 'button', testid: 'dl-replay-all', disabled: state !== 'open' || !rows.length },
      'Replay all matching');
    replayAll.addEventListener('click', async () => {
      const what = sink ? 'every open dead letter of sink ' + sink : 'every open dead letter of every sink';
      if (!(await confirmDialog('Replay dead letters?', 'This queues ' + what + ' for delivery again.', 'Replay all'))) return;
      replayAll.disabled = true;
      try {
        const body = { all: true };
        if (sink) body.sink = sink;
        const r = await api('POST', '/v1/dead-letters/replay', body);
        toast('success', 'Replayed ' + ((r && r.replayed) || []).length + ' dead letters', 'They are queued for delivery again.');
        route();
      } catch (e) {
        showError(e);
        replayAll.disabled = false;
      }
    });
    const list = rows.length
      ? table([['ID', 'num'], 'Failed', 'Sink', 'Event', 'Shipment', ['Attempts', 'num'], 'Last error', 'State'],
        rows.map((d) => h('tr', { class: 'clickable', testid: 'dead-letter-row', dataset: { id: d.id }, onclick: (ev) => { if (ev.target.tagName !== 'A') go(hashOf(['dead-letters', d.id])); } },
          h('td', { class: 'num' }, link(String(d.id), hashOf(['dead-letters', d.id]))),
          h('td', { class: 'nowrap' }, ago(d.failed_at)),
          h('td', null, h('div', null, d.sink), h('div', { class: 'faint' }, d.subscription)),
          h('td', null, d.event_type),
          h('td', { class: 'mono' }, link(d.shipment, hashOf(['shipments', d.shipment]))),
          h('td', { class: 'num' }, String(d.attempts)),
          h('td', null, d.code ? h('div', { class: 'mono' }, d.code) : null, h('span', { class: 'trunc err-text', title: d.error }, d.error)),
          h('td', null, badge(dlState(d), DL_KIND[dlState(d)])))))
      : empty(state === 'open' ? 'No open dead letters' : 'No dead letters match', state === 'open' ? 'Every delivery is either done or still being retried.' : 'Try another filter.', 'dead-letters-empty');
    ctx.render(
      pageHead('Dead letters', 'Deliveries that failed for good. Fix the receiver, then replay.', replayAll),
      h('section', { class: 'panel' },
        h('div', { class: 'toolbar' }, h('span', { class: 'muted' }, 'Filter'), sinkSel, stateSel, h('span', { class: 'grow' })),
        h('div', { testid: 'dead-letter-list' }, list),
        h('div', { class: 'pager' },
          h('span', null, rows.length + ' shown'),
          pagerLinks(['dead-letters'], { sink, state, limit: q.get('limit') }, !!(after || before), data))));
  };

  async function deadLetterPage(ctx, id) {
    const d = await api('GET', '/v1/dead-letters/' + enc(id), undefined, ctx.signal);
    const state = dlState(d);
    const actions = [];
    if (state === 'open') {
      const replay = h('button', { class: 'btn primary', type: 'button', testid: 'dl-replay' }, 'Replay');
      replay.addEventListener('click', async () => {
        replay.disabled = true;
        try {
          const r = await api('POST', '/v1/dead-letters/' + enc(id) + '/replay');
          const row = r && r.replayed && r.replayed[0];
          toast('success', 'Dead letter ' + id + ' replayed', row ? 'Queued again as delivery ' + row.outbox_id + '.' : 'Queued again.');
          route();
        } catch (e) { showError(e); replay.disabled = false; }
      });
      const discard = h('button', { class: 'btn danger', type: 'button', testid: 'dl-discard' }, 'Discard');
      discard.addEventListener('click', async () => {
        if (!(await confirmDialog('Discard dead letter ' + id + '?', 'It will not be delivered to ' + d.sink + '. It stays listed as discarded.', 'Discard', true))) return;
        discard.disabled = true;
        try {
          await api('POST', '/v1/dead-letters/' + enc(id) + '/discard');
          toast('success', 'Dead letter ' + id + ' discarded');
          route();
        } catch (e) { showError(e); discard.disabled = false; }
      });
      actions.push(discard, replay);
    }
    const hist = d.history || [];
    ctx.render(
      pageHead('Dead letter ' + d.id, ['Delivery of ', h('code', null, d.event_type), ' to ', h('code', null, d.sink), ' · ', badge(state, DL_KIND[state], { testid: 'dl-state' })],
        actions, link('← Dead letters', hashOf(['dead-letters'], { sink: d.sink }))),
      h('div', { class: 'grid-half' },
        panel('Summary', h('div', { class: 'panel-body' }, kv([
          ['Shipment', link(d.shipment, hashOf(['shipments', d.shipment]), { class: 'mono' })],
          ['Event', h('span', { class: 'mono' }, d.event_id)],
          ['Event type', d.event_type],
          ['Subscription', d.subscription],
          ['Sink', link(d.sink, '#/sinks')],
          ['Attempts', String(d.attempts)],
          ['Failure code', d.code ? h('code', null, d.code) : h('span', { class: 'faint' }, 'none')],
          ['Last error', h('span', { class: 'err-text', testid: 'dl-error' }, d.error)],
          ['Failed at', fmtTime(d.failed_at)],
          ['Replayed at', d.replayed_at ? fmtTime(d.replayed_at) : null],
          ['Discarded at', d.discarded_at ? [fmtTime(d.discarded_at), d.discarded_by ? ' by ' + d.discarded_by : ''] : null],
        ])), { testid: 'dl-summary' }),
        panel('Failed attempts', hist.length
          ? table([['#', 'num'], 'At', 'Answer', ['Duration', 'num'], 'Error'], hist.map((a) => h('tr', { testid: 'attempt-row' },
            h('td', { class: 'num' }, String(a.attempt)),
            h('td', { class: 'nowrap' }, fmtTime(a.at)),
            h('td', null, a.status === null || a.status === undefined ? badge('no answer', 'bad') : badge('HTTP ' + a.status, a.status < 300 ? 'ok' : 'bad')),
            h('td', { class: 'num' }, a.duration_ms === null || a.duration_ms === undefined ? '—' : fmtMs(a.duration_ms)),
            h('td', { class: 'err-text' }, a.error || ''))))
          : empty('No attempts recorded'), { testid: 'dl-history' })),
      panel('Event', h('pre', { class: 'code', testid: 'dl-event' }, pretty(d.event)), { right: h('span', { class: 'muted' }, 'exactly as delivered') }));
  }

  // ---------------------------------------------------------------- Inbox

  ROUTES.inbox = async (ctx, rest, q) => {
    if (rest.length) return inboxPage(ctx, rest[0]);
    const status = q.get('status') || 'rejected';
    const source = q.get('source') || '';
    const after = q.get('after') || '';
    const before = q.get('before') || '';
    const data = await api('GET', '/v1/inbox' + qs({ status: status === 'all' ? '' : status, source, after, before, limit: pageSize(q) }), undefined, ctx.signal);
    const rows = data.inbox || [];
    const statusSel = h('select', { testid: 'inbox-filter-status', 'aria-label': 'Status' },
      ['rejected', 'accepted', 'all'].map((n) => h('option', { value: n, selected: n === status }, n === 'all' ? 'All payloads' : n)));
    const sourceIn = h('input', { type: 'text', testid: 'inbox-filter-source', placeholder: 'Source', value: source, 'aria-label': 'Source' });
    const form = h('form', { class: 'actions' }, statusSel, sourceIn, h('button', { class: 'btn', type: 'submit' }, 'Filter'));
    const refilter = (ev) => { if (ev) ev.preventDefault(); go(hashOf(['inbox'], { status: statusSel.value, source: sourceIn.value.trim() })); };
    form.addEventListener('submit', refilter);
    statusSel.addEventListener('change', () => refilter());
    const list = rows.length
      ? table([['ID', 'num'], 'Received', 'Source', 'Status', 'Reason'], rows.map((r) => h('tr', { class: 'clickable', testid: 'inbox-row', dataset: { id: r.id }, onclick: () => go(hashOf(['inbox', r.id])) },
        h('td', { class: 'num' }, link(String(r.id), hashOf(['inbox', r.id]))),
        h('td', { class: 'nowrap' }, ago(r.received_at)),
        h('td', { class: 'src' }, r.source),
        h('td', null, badge(r.status, INBOX_KIND[r.status]), r.reprocessed_at ? [' ', badge('re-processed', 'info')] : null),
        h('td', null, r.reason_code ? h('div', { class: 'mono' }, r.reason_code) : h('span', { class: 'faint' }, (r.event_ids || []).length + ' events'),
          r.reason ? h('span', { class: 'trunc muted', title: r.reason }, r.reason) : null))))
      : empty(status === 'rejected' ? 'No rejected payloads' : 'No payloads match', status === 'rejected' ? 'Every payload partners sent was accepted.' : 'Try another filter.', 'inbox-empty');
    ctx.render(
      pageHead('Inbox', 'Every payload partners sent, kept byte for byte — rejected ones with the reason.'),
      h('section', { class: 'panel' },
        h('div', { class: 'toolbar' }, form),
        h('div', { testid: 'inbox-list' }, list),
        h('div', { class: 'pager' }, h('span', null, rows.length + ' shown, newest first'),
          pagerLinks(['inbox'], { status, source, limit: q.get('limit') }, !!(after || before), data))));
  };

  async function inboxPage(ctx, id) {
    const r = await api('GET', '/v1/inbox/' + enc(id), undefined, ctx.signal);
    const result = h('div', { testid: 'reprocess-result' });
    const actions = [];
    if (r.status === 'rejected') {
      const btn = h('button', { class: 'btn primary', type: 'button', testid: 'inbox-reprocess' }, 'Re-process');
      btn.addEventListener('click', async () => {
        btn.disabled = true;
        try {
          let a;
          try {
            a = await api('POST', '/v1/inbox/' + enc(id) + '/reprocess');
          } catch (e) {
            // Rejected again: a problem naming the new inbox record.
            if (!(e instanceof ApiError) || e.problem.code !== 'api.reprocess_rejected') throw e;
            a = { status: 'rejected', event_ids: [], inbox_id: e.problem.inbox_id, code: e.problem.code, detail: e.problem.detail };
          }
          const ok = a.status === 'accepted' || a.status === 'duplicate';
          result.replaceChildren(panel('Re-processed', h('div', { class: 'panel-body' }, kv([
            ['Outcome', badge(a.status, INBOX_KIND[a.status] || 'info', { testid: 'reprocess-status' })],
            ['New inbox record', a.inbox_id ? link('#' + a.inbox_id, hashOf(['inbox', a.inbox_id])) : null],
            ['Events', (a.event_ids || []).length ? h('span', { class: 'chips', testid: 'reprocess-events' }, a.event_ids.map((e) => h('span', { class: 'chip' }, e))) : h('span', { class: 'faint' }, 'none')],
            ['Code', a.code ? h('code', null, a.code) : null],
            ['Detail', a.detail || null],
          ]))));
          if (ok) toast('success', 'Payload ' + id + ' ' + a.status, (a.event_ids || []).length + ' events');
          else toast('error', 'Payload ' + id + ' rejected again', a.detail || '', a.code || '');
          btn.disabled = false;
        } catch (e) { showError(e); btn.disabled = false; }
      });
      actions.push(btn);
    }
    const headers = r.headers || [];
    ctx.render(
      pageHead('Payload ' + r.id, ['From ', h('code', null, r.source), ' · ', badge(r.status, INBOX_KIND[r.status], { testid: 'inbox-status' })],
        actions, link('← Inbox', hashOf(['inbox'], { status: r.status }))),
      result,
      h('div', { class: 'grid-half' },
        panel('Summary', h('div', { class: 'panel-body' }, kv([
          ['Source', h('code', null, r.source)],
          ['Received', fmtTime(r.received_at)],
          ['Status', badge(r.status, INBOX_KIND[r.status])],
          ['Reason code', r.reason_code ? h('code', { testid: 'inbox-reason-code' }, r.reason_code) : null],
          ['Reason', r.reason ? h('span', { class: 'err-text', testid: 'inbox-reason' }, r.reason) : null],
          ['Idempotency key', r.idempotency_key ? h('code', null, r.idempotency_key) : null],
          ['Events', (r.event_ids || []).length ? h('span', { class: 'chips' }, r.event_ids.map((e) => h('span', { class: 'chip' }, e))) : null],
          ['Re-processed', r.reprocessed_at ? [fmtTime(r.reprocessed_at), r.reprocessed_into ? [' into ', link('#' + r.reprocessed_into, hashOf(['inbox', r.reprocessed_into]), { testid: 'reprocessed-into' })] : null] : null],
        ])), { testid: 'inbox-summary' }),
        panel('Headers', headers.length
          ? table(['Name', 'Value'], headers.map(([k, val]) => h('tr', { testid: 'header-row' }, h('td', { class: 'mono' }, k), h('td', { class: 'mono' }, val))))
          : empty('No headers kept'), { testid: 'inbox-headers' })),
      panel('Body', h('pre', { class: 'code', testid: 'inbox-body' }, pretty(r.body || '')), { right: h('span', { class: 'muted' }, 'as received (credential headers are never stored)') }));
  }

  // ---------------------------------------------------------------- Sinks

  ROUTES.sinks = async (ctx) => {
    const body = h('div', { testid: 'sink-list' });
    const render = (data) => {
      const sinks = data.sinks || [];
      body.replaceChildren(sinks.length
        ? table(['Sink', 'State', 'Circuit', ['Pending', 'num'], ['Lag', 'num'], 'Last success', 'Last failure', ['Dead', 'num'], ['5 min', 'num'], ['Errors', 'num'], ''],
          sinks.map((k) => sinkRow(k)))
        : empty('No sinks configured', 'Add sinks under [sinks] in the configuration.'));
    };
    const refresh = async () => {
      try { render(await api('GET', '/v1/sinks', undefined, ctx.signal)); } catch (e) { if (e.name !== 'AbortError') { /* keep the last view */ } }
    };
    const sinkRow = (k) => {
      const n = k.name;
      const lag = typeof k.lag_seconds === 'number' && k.oldest_pending_at ? k.lag_seconds
        : k.oldest_pending_at ? (Date.now() - new Date(k.oldest_pending_at).getTime()) / 1000 : null;
      const pausedBy = k.paused_by || k.changed_by;
      const act = async (verb, label) => {
        try {
          const r = await api('POST', '/v1/sinks/' + enc(n) + '/' + verb);
          if (verb === 'test') {
            const detail = (r.status ? 'HTTP ' + r.status + ' · ' : '') + (r.detail || '') + ' in ' + fmtMs(r.duration_ms || 0);
            toast(r.ok ? 'success' : 'error', 'Test delivery to ' + n + (r.ok ? ' succeeded' : ' failed'), detail, r.code || '');
          } else {
            toast('success', label + ' ' + n);
          }
          refresh();
        } catch (e) { showError(e); }
      };
      const pauseBtn = k.paused
        ? h('button', { class: 'btn small primary', type: 'button', testid: 'sink-resume-' + n, onclick: () => act('resume', 'Resumed') }, 'Resume')
        : h('button', { class: 'btn small', type: 'button', testid: 'sink-pause-' + n, onclick: () => act('pause', 'Paused') }, 'Pause');
      const rate = k.error_rate_5m === null || k.error_rate_5m === undefined ? null : Number(k.error_rate_5m);
      return h('tr', { testid: 'sink-row-' + n },
        h('td', null, h('div', null, h('strong', null, n)), h('div', { class: 'faint' }, k.kind)),
        h('td', null, k.paused ? badge('paused', 'warn', { testid: 'sink-state-' + n, title: pausedBy ? 'by ' + pausedBy : '' }) : badge('active', 'ok', { testid: 'sink-state-' + n })),
        h('td', null, circuitBadge(k.circuit, { testid: 'sink-circuit-' + n })),
        h('td', { class: 'num', testid: 'sink-pending-' + n }, fmtNum(k.pending)),
        h('td', { class: 'num', testid: 'sink-lag-' + n }, lag === null ? '—' : fmtDuration(lag)),
        h('td', { class: 'nowrap' }, ago(k.last_delivered_at)),
        h('td', null, ago(k.last_failure_at), k.last_error ? h('div', { class: 'trunc err-text', title: k.last_error }, k.last_error) : null),
        h('td', { class: 'num' }, k.dead_open ? link(fmtNum(k.dead_open), hashOf(['dead-letters'], { sink: n }), { testid: 'sink-dead-' + n }) : '0'),
        h('td', { class: 'num nowrap' }, fmtNum(k.delivered_5m), ' ✓ · ', fmtNum(k.failed_5m), ' ✗'),
        h('td', { class: 'num' }, rate === null ? '—' : h('span', { class: rate > 0.05 ? 'err-text' : '' }, (rate * 100).toFixed(rate > 0 && rate < 0.1 ? 1 : 0) + '%')),
        h('td', null, h('span', { class: 'actions' }, pauseBtn,
          h('button', { class: 'btn small', type: 'button', testid: 'sink-test-' + n, onclick: () => act('test') }, 'Test'))));
    };
    render(await api('GET', '/v1/sinks', undefined, ctx.signal));
    ctx.render(
      pageHead('Sinks', 'Where events are delivered: circuit, queue and recent results. Refreshes every 2 s.'),
      panel('Health', body));
    ctx.every(refresh, 2000);
  };

  // ---------------------------------------------------------------- Sources

  ROUTES.sources = async (ctx) => {
    const body = h('div', { testid: 'source-list' });
    const render = (data) => {
      const list = data.sources || [];
      body.replaceChildren(list.length
        ? table(['Source', 'Kind', ['Accepted', 'num'], ['Rejected', 'num'], 'Last accepted', 'Last rejected'], list.map((x) => h('tr', { testid: 'source-row-' + x.name },
          h('td', null, h('strong', null, x.name)),
          h('td', null, badge(x.kind || '—', 'plain')),
          h('td', { class: 'num', testid: 'source-accepted-' + x.name }, fmtNum(x.accepted_total)),
          h('td', { class: 'num', testid: 'source-rejected-' + x.name }, x.rejected_total ? link(fmtNum(x.rejected_total), hashOf(['inbox'], { status: 'rejected', source: x.name }), { class: 'err-text' }) : '0'),
          h('td', { class: 'nowrap' }, ago(x.last_accepted_at)),
          h('td', { class: 'nowrap' }, ago(x.last_rejected_at)))))
        : empty('No sources configured', 'Add sources under [sources] in the configuration.'));
    };
    render(await api('GET', '/v1/sources', undefined, ctx.signal));
    ctx.render(pageHead('Sources', 'Where payloads come from, and how many were accepted or rejected.'), panel('Health', body));
    ctx.every(async () => {
      try { render(await api('GET', '/v1/sources', undefined, ctx.signal)); } catch (_) { /* keep the last view */ }
    }, 5000);
  };

  // ---------------------------------------------------------------- Subscriptions

  function splitList(text) {
    return text.split(/[\s,]+/).map((t) => t.trim()).filter(Boolean);
  }

  ROUTES.subscriptions = async (ctx) => {
    const [data, sinks] = await Promise.all([api('GET', '/v1/subscriptions', undefined, ctx.signal), sinkNames(ctx.signal)]);
    const subs = data.subscriptions || [];
    const formBox = h('div', { testid: 'sub-form-box' });
    const openForm = (sub) => {
      const editing = !!sub;
      sub = sub || { name: '', sink: sinks[0] || '', types: [], sources: [] };
      const name = h('input', { type: 'text', testid: 'sub-name', value: sub.name, disabled: editing, placeholder: 'e.g. erp-deliveries' });
      const sinkSel = h('select', { testid: 'sub-sink' }, (sinks.includes(sub.sink) || !sub.sink ? sinks : sinks.concat([sub.sink])).map((n) => h('option', { value: n, selected: n === sub.sink }, n)));
      const types = h('input', { type: 'text', testid: 'sub-types', value: (sub.types || []).join(', '), placeholder: 'all types' });
      const sources = h('input', { type: 'text', testid: 'sub-sources', value: (sub.sources || []).join(', '), placeholder: 'all sources' });
      const pdNow = sub.personal_data === true ? 'true' : sub.personal_data === false ? 'false' : '';
      const personal = h('select', { testid: 'sub-personal-data' },
        [['', 'As the sink'], ['true', 'In clear'], ['false', 'Masked']].map(([v, label]) => h('option', { value: v, selected: v === pdNow }, label)));
      const save = h('button', { class: 'btn primary', type: 'submit', testid: 'sub-save' }, editing ? 'Save changes' : 'Create subscription');
      const cancel = h('button', { class: 'btn', type: 'button', testid: 'sub-cancel', onclick: () => formBox.replaceChildren() }, 'Cancel');
      const form = h('form', { class: 'panel-body', testid: 'sub-form' },
        h('div', { class: 'form-grid' },
          h('label', { class: 'field' }, 'Name', name),
          h('label', { class: 'field' }, 'Sink', sinkSel),
          h('label', { class: 'field' }, 'Event types', types, h('span', { class: 'help' }, 'Comma-separated: exact types or prefixes like shipment.*; empty for all.')),
          h('label', { class: 'field' }, 'Sources', sources, h('span', { class: 'help' }, 'Comma-separated source names; empty for all.')),
          h('label', { class: 'field' }, 'Personal data', personal, h('span', { class: 'help' }, 'Names, addresses, phones of confidential events: in clear or masked (***) for this consumer; "As the sink" follows [privacy] personal_data_sinks.')),
          h('div', { class: 'wide actions' }, save, cancel)));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const n = name.value.trim();
        if (!n) { toast('error', 'A subscription needs a name'); return; }
        save.disabled = true;
        try {
          const pd = personal.value === '' ? null : personal.value === 'true';
          await api('PUT', '/v1/subscriptions/' + enc(n), { sink: sinkSel.value, types: splitList(types.value), sources: splitList(sources.value), personal_data: pd });
          toast('success', 'Subscription ' + n + (editing ? ' saved' : ' created'));
          route();
        } catch (e) { showError(e); save.disabled = false; }
      });
      formBox.replaceChildren(panel(editing ? 'Edit subscription ' + sub.name : 'New subscription', form));
      name.focus();
    };
    const del = async (n) => {
      if (!(await confirmDialog('Delete subscription ' + n + '?', 'Events will no longer be routed through it. Deliveries already queued are kept.', 'Delete', true))) return;
      try {
        await api('DELETE', '/v1/subscriptions/' + enc(n));
        toast('success', 'Subscription ' + n + ' deleted');
        route();
      } catch (e) { showError(e); }
    };
    const list = subs.length
      ? table(['Name', 'Sink', 'Event types', 'Sources', 'Personal data', 'Origin', 'Updated', ''], subs.map((x) => h('tr', { testid: 'subscription-row-' + x.name },
        h('td', null, h('strong', null, x.name)),
        h('td', null, link(x.sink, '#/sinks')),
        h('td', null, (x.types || []).length ? h('span', { class: 'chips' }, x.types.map((t) => h('span', { class: 'chip' }, t))) : h('span', { class: 'faint' }, 'all')),
        h('td', null, (x.sources || []).length ? h('span', { class: 'chips' }, x.sources.map((t) => h('span', { class: 'chip' }, t))) : h('span', { class: 'faint' }, 'all')),
        h('td', { testid: 'sub-pd-' + x.name }, x.personal_data === true ? badge('in clear', 'accent') : x.personal_data === false ? badge('masked', 'plain') : h('span', { class: 'faint' }, 'as the sink')),
        h('td', null, badge(x.origin || '—', x.origin === 'config' ? 'plain' : 'accent')),
        h('td', { class: 'nowrap' }, x.updated_at ? ago(x.updated_at) : '—'),
        h('td', null, h('span', { class: 'actions' },
          h('button', { class: 'btn small', type: 'button', testid: 'sub-edit-' + x.name, onclick: () => openForm(x) }, 'Edit'),
          h('button', { class: 'btn small danger', type: 'button', testid: 'sub-delete-' + x.name, onclick: () => del(x.name) }, 'Delete'))))))
      : empty('No subscriptions', 'Nothing is delivered until a subscription routes events to a sink.', 'subscriptions-empty');
    ctx.render(
      pageHead('Subscriptions', 'Which events go to which sink.',
        h('button', { class: 'btn primary', type: 'button', testid: 'sub-new', onclick: () => openForm(null) }, 'New subscription')),
      formBox,
      panel('Routing table', h('div', { testid: 'subscription-list' }, list)));
  };

  // ---------------------------------------------------------------- start

  function start() {
    const out = document.getElementById('sign-out');
    if (out) {
      out.addEventListener('click', () => {
        sessionStorage.removeItem(KEY);
        document.getElementById('main').replaceChildren();
        askKey().then(route);
      });
    }
    window.addEventListener('hashchange', route);
    if (!location.hash) history.replaceState(null, '', '#/overview');
    if (sessionStorage.getItem(KEY)) route();
    else askKey().then(route);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
