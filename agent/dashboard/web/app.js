// The mitosis dashboard (docs/dashboard.md). Plain JavaScript, no build
// step: it reads the agent's API with the token the user gives and draws
// what it finds. Every piece of data goes into the page as text
// (textContent, attribute values), never as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'mitosis.token'; // sessionStorage only: gone with the tab
  const POLL_MS = 2000;
  const CHART_POINTS = 1000; // decisions kept per cluster for the chart
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const state = {
    token: '',
    role: '',
    name: '',
    timer: 0,
    generation: 0, // bumped on sign-out, so a poll in flight draws nothing
    history: new Map(), // cluster → Map(seq → decision record), for the chart
    sections: new Map(), // cluster → its section's parts
    now: 0, // the agent's time: a simulated world's clock is not the wall clock
  };

  const $ = (id) => document.getElementById(id);

  // el makes an element: attrs are attributes (class, data-*, …), children
  // are nodes or strings (as text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null && v !== false) e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  // --- time ---------------------------------------------------------------

  function clock(t) {
    const d = new Date(t);
    // UTC, as the API, the command line and a simulated world's clock are.
    return isNaN(d) ? '' : d.toISOString().slice(11, 19);
  }

  function age(t) {
    const s = Math.max(0, Math.round(((state.now || Date.now()) - new Date(t)) / 1000));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d';
  }

  // --- the API ------------------------------------------------------------

  async function api(path, init) {
    const opts = Object.assign({ cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' }, init || {});
    opts.headers = Object.assign({ Authorization: 'Bearer ' + state.token }, (init && init.headers) || {});
    const res = await fetch(path, opts);
    let body = null;
    try {
      body = await res.json();
    } catch (_) {
      body = null;
    }
    return { status: res.status, ok: res.ok, body };
  }

  function apiError(r, what) {
    const msg = r.body && r.body.error ? r.body.error : 'HTTP ' + r.status;
    return new Error(what + ': ' + msg);
  }

  async function get(path) {
    const r = await api(path);
    if (r.status === 401) {
      signOut('the token is no longer accepted');
      throw new Error('signed out');
    }
    if (!r.ok) throw apiError(r, path);
    return r.body;
  }

  const canOperate = () => state.role === 'operate' || state.role === 'admin';

  // --- signing in ---------------------------------------------------------

  function tokenFromFragment() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (!m) return '';
    // Take it out of the address bar (and so of the history) at once.
    history.replaceState(null, '', location.pathname + location.search);
    try {
      return decodeURIComponent(m[1]);
    } catch (_) {
      return m[1];
    }
  }

  async function signIn(token) {
    state.token = token.trim();
    if (!state.token) return showLogin('');
    let r;
    try {
      r = await api('/v1/whoami');
    } catch (e) {
      return showLogin('the agent did not answer: ' + e.message);
    }
    if (r.status === 401) {
      // A refused token replaces the one kept: a reload must not sign in
      // silently with the token given before it.
      sessionStorage.removeItem(TOKEN_KEY);
      return showLogin('this token is not known to the agent');
    }
    if (!r.ok || !r.body) return showLogin(apiError(r, 'whoami').message);
    sessionStorage.setItem(TOKEN_KEY, state.token);
    state.role = r.body.role;
    state.name = r.body.name;
    document.body.dataset.role = state.role;
    $('who').textContent = state.name + ' (' + state.role + ')';
    $('login').hidden = true;
    $('logout').hidden = false;
    poll();
  }

  function showLogin(msg) {
    state.token = '';
    $('login').hidden = false;
    $('login-error').textContent = msg || '';
    $('token').value = '';
    $('token').focus();
  }

  function signOut(msg) {
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(state.timer);
    state.generation++;
    state.role = '';
    state.name = '';
    delete document.body.dataset.role;
    state.sections.clear();
    state.history.clear();
    $('clusters').replaceChildren();
    $('who').textContent = '';
    $('updated').textContent = '';
    $('logout').hidden = true;
    $('error').hidden = true;
    showLogin(msg);
  }

  // --- polling ------------------------------------------------------------

  async function poll() {
    clearTimeout(state.timer);
    const gen = state.generation;
    try {
      const status = await get('/v1/status');
      const views = await Promise.all(
        (status.clusters || []).map(async (c) => {
          const p = '/v1/clusters/' + encodeURIComponent(c.name);
          const [nodes, ops, decisions] = await Promise.all([
            get(p + '/nodes'),
            get(p + '/operations?limit=50'),
            get(p + '/decisions?limit=200'),
          ]);
          return { summary: c, nodes: nodes || [], ops: ops || [], decisions: decisions || [] };
        }),
      );
      if (gen !== state.generation) return;
      render(status, views);
      $('error').hidden = true;
      $('updated').textContent = 'updated ' + clock(Date.now());
    } catch (e) {
      if (gen !== state.generation) return;
      $('error').textContent = 'Could not read the agent: ' + e.message;
      $('error').hidden = false;
    }
    if (gen === state.generation) state.timer = setTimeout(poll, POLL_MS);
  }

  // --- drawing ------------------------------------------------------------

  function render(status, views) {
    const agent = ['mitosis ' + (status.version || '?'), 'policy ' + (status.policy_version || '?')];
    $('agent').textContent = agent.join(' · ');
    // Ages count from the agent's time: on a simulated world, the newest
    // decision's; on real machines, the wall clock.
    state.now = 0;
    if (status.simulated) {
      for (const c of status.clusters || []) {
        if (c.last_decision) state.now = Math.max(state.now, new Date(c.last_decision.at).getTime() || 0);
      }
    }
    const seen = new Set();
    for (const v of views) {
      seen.add(v.summary.name);
      const s = section(v.summary.name);
      remember(v.summary.name, v.decisions);
      s.header.replaceChildren(...header(status, v.summary));
      s.tree.replaceChildren(tree(v.summary.name, v.nodes));
      s.chart.replaceChildren(chart(v.summary.name));
      s.timeline.replaceChildren(timeline(v.ops));
      s.decisions.replaceChildren(decisionTable(v.decisions));
    }
    for (const [name, s] of state.sections) {
      if (!seen.has(name)) {
        s.root.remove();
        state.sections.delete(name);
      }
    }
  }

  // section makes a cluster's section once; later polls replace its parts'
  // contents, so the answer to an action stays where it is.
  function section(name) {
    let s = state.sections.get(name);
    if (s) return s;
    s = {
      header: el('div', { class: 'summary' }),
      answer: el('div', { class: 'answer', role: 'status', 'aria-live': 'polite' }),
      tree: el('div', { class: 'tree' }),
      chart: el('div', { class: 'chart' }),
      timeline: el('div', { class: 'timeline' }),
      decisions: el('div', { class: 'decisions' }),
    };
    s.root = el(
      'section',
      { class: 'cluster card', 'data-cluster': name },
      s.header,
      s.answer,
      el('div', { class: 'grid' },
        el('div', { class: 'panel' }, el('h3', {}, 'Nodes by clone lineage'), s.tree),
        el('div', { class: 'panel' }, el('h3', {}, 'Utilization and size'), s.chart)),
      el('div', { class: 'grid' },
        el('div', { class: 'panel' }, el('h3', {}, 'Operations'), s.timeline),
        el('div', { class: 'panel' }, el('h3', {}, 'Decisions'), s.decisions)),
    );
    $('clusters').append(s.root);
    state.sections.set(name, s);
    return s;
  }

  function badge(text, kind) {
    return el('span', { class: 'badge ' + (kind || '') }, text);
  }

  function header(status, c) {
    const states = Object.entries(c.nodes || {}).sort(([a], [b]) => a.localeCompare(b));
    const d = c.last_decision;
    const out = [
      el('h2', {}, c.name,
        status.simulated ? badge('simulated', 'sim') : null,
        status.dry_run || c.dry_run ? badge('dry run', 'dry') : null,
        c.paused ? badge('paused', 'paused') : null),
      el('p', { class: 'facts' },
        el('span', { class: 'size', 'data-size': c.size }, 'size ' + c.size),
        ' (min ' + c.min + ', max ' + c.max + ')',
        ' · ', states.length ? states.map(([k, n]) => n + ' ' + k).join(', ') : 'no nodes',
        ' · ' + (c.in_flight || 0) + ' in flight'),
    ];
    if (d) {
      out.push(el('p', { class: 'last' },
        'Last decision ' + clock(d.at) + ': ',
        el('strong', {}, actionText(d)),
        d.decision && d.decision.reason ? ' — ' + d.decision.reason : '',
        d.by ? ' (by ' + d.by + ')' : '',
        d.error ? el('span', { class: 'error' }, ' error: ' + d.error) : null));
    } else {
      out.push(el('p', { class: 'last muted' }, 'No decision yet.'));
    }
    return out;
  }

  function actionText(d) {
    const a = (d.decision && d.decision.action) || 'none';
    const n = d.decision && d.decision.count;
    return n ? a + ' ' + n : a;
  }

  // tree nests each node under its parent. A node whose parent is not
  // registered any more (detached) is a root too, and says so.
  function tree(cluster, nodes) {
    const ids = new Set(nodes.map((n) => n.id));
    const children = new Map();
    const roots = [];
    for (const n of nodes) {
      if (n.parent && ids.has(n.parent)) {
        if (!children.has(n.parent)) children.set(n.parent, []);
        children.get(n.parent).push(n);
      } else {
        roots.push(n);
      }
    }
    if (!roots.length) return el('p', { class: 'muted' }, 'No nodes registered.');
    const branch = (list) => el('ul', {}, list.map((n) => {
      const kids = children.get(n.id);
      return el('li', {}, nodeRow(cluster, n, ids), kids ? branch(kids) : null);
    }));
    return branch(roots);
  }

  function nodeRow(cluster, n, ids) {
    const row = el('div', {
      class: 'node state-' + n.state,
      'data-node-id': n.id,
      'data-parent': n.parent || '',
      'data-state': n.state,
      'data-depth': n.lineage_depth || 0,
    },
    el('span', { class: 'id' }, n.id),
    badge(n.state, 'state-' + n.state),
    el('span', { class: 'muted' }, n.host ? 'on ' + n.host : ''),
    el('span', { class: 'muted' }, n.role ? n.role : ''),
    el('span', { class: 'muted', title: n.created_at || '' }, n.created_at ? age(n.created_at) + ' old' : ''),
    n.parent && !ids.has(n.parent) ? el('span', { class: 'muted' }, 'from ' + n.parent + ' (gone)') : null);
    if (canOperate() && n.state === 'ready') {
      row.append(
        el('span', { class: 'spacer' }),
        actionButton('clone', cluster, n.id, { template: n.id }),
        actionButton('detach', cluster, n.id, { node: n.id }),
      );
    }
    return row;
  }

  function actionButton(action, cluster, id, body) {
    const b = el('button', { type: 'button', class: 'act ' + action, 'data-action': action, 'data-node': id }, action);
    b.addEventListener('click', () => act(action, cluster, id, body, b));
    return b;
  }

  async function act(action, cluster, id, body, button) {
    const s = state.sections.get(cluster);
    if (action === 'detach' && !confirm('Detach and destroy ' + id + '?')) return;
    button.disabled = true;
    s.answer.replaceChildren(el('p', { class: 'muted' }, action + ' ' + id + '…'));
    let r;
    try {
      r = await api('/v1/clusters/' + encodeURIComponent(cluster) + '/' + action, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch (e) {
      s.answer.replaceChildren(el('p', { class: 'error' }, action + ' ' + id + ': ' + e.message));
      return;
    }
    const rec = r.body || {};
    const parts = [];
    if (r.status === 201) {
      const ops = rec.operations || [];
      parts.push(el('p', { class: 'ok', 'data-answer': 'started' },
        action + ' ' + id + ': ' + (ops.length ? 'operation ' + ops.join(', ') + ' started' : 'proposed (dry run)')));
    } else {
      parts.push(el('p', { class: 'error', 'data-answer': 'refused' },
        action + ' ' + id + ': ' + (r.status === 409 ? 'refused' : 'HTTP ' + r.status) + (rec.error ? ' — ' + rec.error : '')));
      if (rec.reasons && rec.reasons.length) {
        parts.push(el('ul', { class: 'reasons' }, rec.reasons.map((x) => el('li', {}, x.code + ': ' + x.message))));
      }
    }
    s.answer.replaceChildren(...parts);
    poll();
  }

  function timeline(ops) {
    if (!ops.length) return el('p', { class: 'muted' }, 'No operations yet.');
    return el('ol', { class: 'ops' }, ops.map((op) => {
      const what = op.kind === 'expand'
        ? (op.template || '?') + ' → ' + (op.node || 'clone')
        : (op.node || '?');
      return el('li', { class: 'op status-' + op.status, 'data-op-id': op.id, 'data-status': op.status, 'data-kind': op.kind },
        el('div', { class: 'op-head' },
          el('time', { datetime: op.created_at }, clock(op.created_at)),
          el('strong', {}, op.kind),
          badge(op.status, 'status-' + op.status),
          el('span', {}, what),
          op.host ? el('span', { class: 'muted' }, 'on ' + op.host) : null,
          el('span', { class: 'muted id' }, op.id)),
        op.reason ? el('div', { class: 'muted' }, op.reason) : null,
        op.error ? el('div', { class: 'error' }, op.error) : null,
        el('ol', { class: 'steps' }, (op.journal || []).map((j) =>
          el('li', { 'data-step': j.step },
            el('time', { datetime: j.at }, clock(j.at)), ' ',
            el('span', { class: 'step' }, j.step),
            j.note ? el('span', { class: 'muted' }, ' — ' + j.note) : null))));
    }));
  }

  function decisionTable(recs) {
    if (!recs.length) return el('p', { class: 'muted' }, 'No decisions yet.');
    const rows = recs.slice(0, 50).map((d) => el('tr', { 'data-seq': d.seq, class: d.by ? 'manual' : '' },
      el('td', {}, el('time', { datetime: d.at }, clock(d.at))),
      el('td', {}, (d.decision && d.decision.action) || 'none', d.dry_run ? badge('dry', 'dry') : null),
      el('td', { class: 'num' }, (d.decision && d.decision.count) || ''),
      el('td', {},
        (d.decision && d.decision.reason) || '',
        !d.by && d.metrics && d.metrics.available === false ? el('div', { class: 'error' }, 'metrics: ' + (d.metrics.reason || 'unavailable')) : null,
        d.error ? el('div', { class: 'error' }, d.error) : null),
      el('td', {}, (d.reasons || []).map((x) => el('div', { class: 'reason' }, x.code + ': ' + x.message))),
      el('td', {}, d.by || '')));
    return el('table', {},
      el('thead', {}, el('tr', {}, ['time', 'action', 'count', 'reason', 'guardrails', 'by'].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows));
  }

  // --- the chart ----------------------------------------------------------

  function remember(cluster, recs) {
    let h = state.history.get(cluster);
    if (!h) state.history.set(cluster, (h = new Map()));
    for (const d of recs) h.set(d.seq, d);
    if (h.size > CHART_POINTS) {
      const old = [...h.keys()].sort((a, b) => a - b).slice(0, h.size - CHART_POINTS);
      for (const k of old) h.delete(k);
    }
  }

  // metricOf is the main metric of a record: the ready nodes' mean
  // utilization, or else the first node metric.
  function metricOf(d) {
    const m = d.observed && d.observed.node_means;
    if (!m) return null;
    if (typeof m.utilization === 'number') return { name: 'utilization', v: m.utilization };
    const k = Object.keys(m).sort()[0];
    return k === undefined ? null : { name: k, v: m[k] };
  }

  function chart(cluster) {
    const recs = [...(state.history.get(cluster) || new Map()).values()].sort((a, b) => a.seq - b.seq);
    const pts = recs.map((d) => ({ t: new Date(d.at).getTime(), m: metricOf(d), size: d.size }));
    const W = 640, H = 280, L = 52, R = 52, T = 36, B = 34;
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'plot', role: 'img', 'data-points': pts.length });
    const name = (pts.find((p) => p.m) || { m: { name: 'utilization' } }).m.name;
    root.append(svg('title', {}, name + ' (left) and cluster size (right) by decision'));
    if (pts.length < 2) {
      root.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'muted' }, 'Waiting for decisions…'));
      return root;
    }
    const t0 = pts[0].t, t1 = Math.max(pts[pts.length - 1].t, t0 + 1);
    const mMax = Math.max(1, ...pts.filter((p) => p.m).map((p) => p.m.v)) * 1.05;
    const sMax = Math.max(1, ...pts.map((p) => p.size || 0));
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const yM = (v) => T + (1 - v / mMax) * (H - T - B);
    const yS = (v) => T + (1 - v / sMax) * (H - T - B);

    // Axes, grid and ticks.
    for (let i = 0; i <= 4; i++) {
      const y = T + (i / 4) * (H - T - B);
      root.append(svg('line', { x1: L, x2: W - R, y1: y, y2: y, class: 'grid' }));
      root.append(svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', class: 'tick metric' }, ((mMax * (4 - i)) / 4).toFixed(2)));
      root.append(svg('text', { x: W - R + 6, y: y + 4, class: 'tick size' }, Math.round((sMax * (4 - i)) / 4)));
    }
    root.append(svg('line', { x1: L, x2: L, y1: T, y2: H - B, class: 'axis' }));
    root.append(svg('line', { x1: W - R, x2: W - R, y1: T, y2: H - B, class: 'axis' }));
    root.append(svg('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
    root.append(svg('text', { x: L, y: H - B + 16, class: 'tick' }, clock(t0)));
    root.append(svg('text', { x: W - R, y: H - B + 16, 'text-anchor': 'end', class: 'tick' }, clock(t1)));
    root.append(svg('text', { x: 14, y: T + (H - T - B) / 2, transform: `rotate(-90 14 ${T + (H - T - B) / 2})`, 'text-anchor': 'middle', class: 'label metric' }, name));
    root.append(svg('text', { x: W - 10, y: T + (H - T - B) / 2, transform: `rotate(90 ${W - 10} ${T + (H - T - B) / 2})`, 'text-anchor': 'middle', class: 'label size' }, 'nodes (size)'));

    // The series: the metric as a line, the size as steps.
    const metric = pts.filter((p) => p.m).map((p) => `${x(p.t).toFixed(1)},${yM(p.m.v).toFixed(1)}`);
    if (metric.length) root.append(svg('polyline', { points: metric.join(' '), class: 'series metric', 'data-series': name }));
    const steps = [];
    pts.forEach((p, i) => {
      if (i > 0) steps.push(`${x(p.t).toFixed(1)},${yS(pts[i - 1].size).toFixed(1)}`);
      steps.push(`${x(p.t).toFixed(1)},${yS(p.size).toFixed(1)}`);
    });
    root.append(svg('polyline', { points: steps.join(' '), class: 'series size', 'data-series': 'size' }));

    // The legend.
    const lg = svg('g', { transform: `translate(${L} 10)` });
    lg.append(svg('rect', { x: 0, y: 3, width: 14, height: 3, class: 'swatch metric' }));
    lg.append(svg('text', { x: 20, y: 9, class: 'tick' }, name + ' (mean over ready nodes, left)'));
    lg.append(svg('rect', { x: 260, y: 3, width: 14, height: 3, class: 'swatch size' }));
    lg.append(svg('text', { x: 280, y: 9, class: 'tick' }, 'size in nodes (right)'));
    root.append(lg);
    return root;
  }

  // --- start --------------------------------------------------------------

  function start() {
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      signIn($('token').value);
    });
    $('logout').addEventListener('click', () => signOut(''));
    window.addEventListener('hashchange', () => {
      const t = tokenFromFragment();
      if (t) {
        signOut('');
        signIn(t);
      }
    });
    const token = tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY) || '';
    if (token) signIn(token);
    else showLogin('');
  }

  start();
})();
