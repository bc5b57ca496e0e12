/*
 * The admin server's live page: plain HTML, CSS and a script, shipped in the package as strings (no
 * build step, no CDN), with uPlot for the charts. The script reads only the JSON endpoints and writes
 * every value as text (never as HTML). @internal
 */

/** The page. Its script and styles come from the server (`/assets/…`), as the CSP allows. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>proxyless admin</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/uPlot.min.css">
<link rel="stylesheet" href="/assets/dashboard.css">
</head>
<body>
<header><h1>proxyless</h1><span id="who"></span><span id="status" class="muted">connecting…</span></header>
<main>
<section id="services" aria-label="upstream services"></section>
<aside>
<section class="card" aria-label="explain">
<h2>Explain a request</h2>
<form id="explain">
<label>service <select name="service" required></select></label>
<label>method <input name="method" value="GET" size="7"></label>
<label>path <input name="path" value="/" size="24"></label>
<label>headers <textarea name="headers" rows="2" placeholder="name: value, one per line"></textarea></label>
<button type="submit">Explain</button>
</form>
<pre id="explanation" class="muted">Where a request would go, and why.</pre>
</section>
<section class="card" aria-label="events"><h2>Events</h2><ol id="events" reversed></ol></section>
</aside>
</main>
<script src="/assets/uPlot.iife.min.js"></script>
<script src="/assets/dashboard.js"></script>
</body>
</html>
`;

/** The page's styles. */
export const DASHBOARD_CSS = `
:root { font: 14px/1.4 system-ui, sans-serif; color: #1d2330; background: #f4f6fa; }
header { display: flex; gap: 1em; align-items: baseline; padding: .6em 1.2em; background: #1d2330; color: #fff; }
header h1 { font-size: 1.2em; margin: 0; }
main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(280px, 1fr); gap: 1em; padding: 1em; }
.card { background: #fff; border-radius: 6px; padding: .8em 1em; margin-bottom: 1em; box-shadow: 0 1px 2px #0002; }
h2 { font-size: 1.05em; margin: 0 0 .4em; }
.muted { color: #778; }
table { border-collapse: collapse; width: 100%; margin: .4em 0; }
th, td { text-align: left; padding: .2em .5em; border-bottom: 1px solid #e4e7ee; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 0 .5em; border-radius: 9px; font-size: .85em; background: #e4e7ee; margin-left: .4em; }
.passing, .closed { background: #d6f5df; } .warning, .half-open { background: #fff1c7; } .critical, .ejected, .open, .panic { background: #ffd9d6; }
.charts { display: flex; gap: 1em; flex-wrap: wrap; }
form label { display: block; margin: .3em 0; }
form input, form select, form textarea { font: inherit; width: 100%; box-sizing: border-box; }
pre { white-space: pre-wrap; font-size: .85em; }
#events { padding-left: 1.4em; font-size: .85em; max-height: 40em; overflow: auto; }
`;

/** The page's script: polls the JSON endpoints, draws the services, charts, routes, events and explain. */
export const DASHBOARD_JS = String.raw`"use strict";
(() => {
  const token = new URLSearchParams(location.hash.slice(1)).get("token") ?? sessionStorage.getItem("proxyless-admin-token");
  if (token) sessionStorage.setItem("proxyless-admin-token", token);
  // Out of the address bar (history, bookmarks, screenshots) once read.
  if (location.hash.includes("token=")) history.replaceState(null, "", location.pathname + location.search);
  const headers = token ? { authorization: "Bearer " + token } : {};
  const get = async (path) => {
    const res = await fetch(path, { headers, cache: "no-store" });
    const json = await res.json();
    if (!res.ok) throw new Error((json.error && json.error.message) || res.status);
    return json;
  };
  const el = (tag, props, ...children) => {
    const node = document.createElement(tag);
    Object.assign(node, props ?? {});
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  };
  const badge = (text, cls) => el("span", { className: "badge " + (cls ?? text), textContent: text });
  const HISTORY = 120;
  const series = new Map();
  const charts = new Map();
  let lastSeq = 0;
  let configs = {};

  function record(service) {
    let s = series.get(service.name);
    if (!s) series.set(service.name, (s = { t: [], rate: [], errors: [], inflight: [], latency: [], ejected: [], last: null }));
    const eps = service.endpoints;
    const rtts = eps.map((e) => e.rttMs).filter((v) => typeof v === "number");
    const now = Date.now() / 1000;
    const attempts = eps.reduce((n, e) => n + e.attempts, 0);
    const failures = eps.reduce((n, e) => n + e.failures, 0);
    // Rates from the counters' change since the last poll (an endpoint that left takes its counts along: never below 0).
    const dt = s.last ? now - s.last.t : 0;
    s.t.push(now);
    s.rate.push(dt > 0 ? Math.max(0, attempts - s.last.attempts) / dt : null);
    s.errors.push(dt > 0 ? Math.max(0, failures - s.last.failures) / dt : null);
    s.inflight.push(eps.reduce((n, e) => n + e.pending, 0));
    s.latency.push(rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : null);
    s.ejected.push(eps.filter((e) => e.ejected).length);
    s.last = { t: now, attempts, failures };
    for (const k of ["t", "rate", "errors", "inflight", "latency", "ejected"]) if (s[k].length > HISTORY) s[k].shift();
    return s;
  }

  function chart(key, title, label, data, target) {
    let c = charts.get(key);
    if (!c || !target.contains(c.root)) {
      c = new uPlot({ title, width: 300, height: 120, legend: { show: false }, scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } }, series: [{}, { label, stroke: "#3b6fd8", width: 1.5 }] }, data, target);
      charts.set(key, c);
    } else c.setData(data);
  }

  function routes(name) {
    const config = configs[name];
    const rows = [];
    for (const [i, r] of ((config && config.router && config.router.routes) || []).entries()) {
      const d = r.destination || {};
      rows.push([String(i), JSON.stringify(r.match || {}), (d.service || name) + (d.serviceSubset ? " / " + d.serviceSubset : "") + (d.prefixRewrite ? " (rewrite " + d.prefixRewrite + ")" : "")]);
    }
    for (const s of (config && config.splitter && config.splitter.splits) || []) rows.push(["split", (s.weight ?? 0) + "%", (s.service || name) + (s.serviceSubset ? " / " + s.serviceSubset : "")]);
    if (!rows.length) return el("p", { className: "muted", textContent: "no routes or splits: every request goes to " + name });
    return el("table", {}, el("tr", {}, el("th", {}, "route"), el("th", {}, "match / weight"), el("th", {}, "to")), ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c)))));
  }

  function drawServices(snapshot) {
    const root = document.getElementById("services");
    const select = document.querySelector("#explain select");
    const names = snapshot.services.map((s) => s.name);
    if (select.options.length !== names.length || [...select.options].some((o, i) => o.value !== names[i])) {
      const keep = select.value;
      select.replaceChildren(...names.map((n) => el("option", { value: n, textContent: n })));
      if (names.includes(keep)) select.value = keep;
    }
    for (const service of snapshot.services) {
      const s = record(service);
      let card = root.querySelector('[data-service="' + CSS.escape(service.name) + '"]');
      if (!card) {
        card = el("section", { className: "card" });
        card.dataset.service = service.name;
        card.append(el("h2"), el("div", { className: "endpoints" }), el("div", { className: "charts" }), el("div", { className: "routes" }));
        root.append(card);
      }
      const h = card.querySelector("h2");
      h.replaceChildren(service.name, badge(service.status, service.status === "known" ? "passing" : "warning"), badge(service.policy, "x"), badge("breaker " + (service.breaker ?? "none"), service.breaker ?? "x"), badge("retry budget " + service.budget.retries + " / " + service.budget.allowed, service.budget.retries >= service.budget.allowed ? "warning" : "x"), badge("config v" + service.config.version, "x"));
      if (service.panic) h.append(badge("panic"));
      const rows = service.endpoints.map((e) => {
        const state = e.ejected ? badge("ejected" + (e.ejectedForMs != null ? " for " + Math.ceil(e.ejectedForMs / 1000) + " s" : ""), "ejected") : e.inRotation ? badge("in rotation", "passing") : badge("out of rotation", "warning");
        const tr = el("tr", {}, el("td", {}, e.id), el("td", {}, e.address + ":" + e.port), el("td", {}, badge(e.health)), el("td", {}, state), el("td", {}, String(e.weight)), el("td", {}, String(e.pending)), el("td", {}, e.rttMs == null ? "–" : e.rttMs.toFixed(2)), el("td", {}, String(e.connections)), el("td", {}, String(e.attempts)), el("td", {}, String(e.failures)));
        tr.dataset.endpoint = e.id;
        tr.dataset.state = e.ejected ? "ejected" : e.inRotation ? "in-rotation" : "out-of-rotation";
        return tr;
      });
      card.querySelector(".endpoints").replaceChildren(el("table", {}, el("tr", {}, ...["endpoint", "address", "health", "state", "weight", "in flight", "latency ms", "connections", "attempts", "failed"].map((t) => el("th", {}, t))), ...rows));
      const target = card.querySelector(".charts");
      chart(service.name + "/rate", "attempts per second", "req/s", [s.t, s.rate], target);
      chart(service.name + "/errors", "failed attempts per second", "errors/s", [s.t, s.errors], target);
      chart(service.name + "/inflight", "requests in flight", "in flight", [s.t, s.inflight], target);
      chart(service.name + "/latency", "mean latency estimate (ms)", "ms", [s.t, s.latency], target);
      chart(service.name + "/ejected", "endpoints ejected", "ejected", [s.t, s.ejected], target);
      card.querySelector(".routes").replaceChildren(routes(service.name));
    }
  }

  function drawEvents(events) {
    const list = document.getElementById("events");
    for (const e of events) {
      lastSeq = Math.max(lastSeq, e.seq);
      const old = list.querySelector('[data-key="' + CSS.escape(e.type + "|" + e.service + "|" + (e.detail.status ?? "") + "|" + (e.detail.caller ?? "")) + '"]');
      if (old && e.count > 1) old.remove();
      const item = el("li", {}, el("span", { className: "muted", textContent: e.at.slice(11, 19) + " " }), el("b", {}, e.type), " " + e.service + (e.count > 1 ? " ×" + e.count : "") + " ", el("span", { className: "muted", textContent: JSON.stringify(e.detail) }));
      item.dataset.key = e.type + "|" + e.service + "|" + (e.detail.status ?? "") + "|" + (e.detail.caller ?? "");
      item.dataset.type = e.type;
      list.prepend(item);
    }
    while (list.children.length > 200) list.lastElementChild.remove();
  }

  async function tick() {
    try {
      const [snapshot, events] = await Promise.all([get("/api/snapshot"), get("/api/events?since=" + lastSeq)]);
      document.getElementById("who").textContent = (snapshot.service ?? "") + " · " + snapshot.registry;
      drawServices(snapshot);
      drawEvents(events.events);
      document.getElementById("status").textContent = "live · " + new Date().toLocaleTimeString();
    } catch (err) {
      document.getElementById("status").textContent = "cannot read the admin server: " + err.message;
    }
  }

  async function loadConfigs() {
    try {
      const json = await get("/api/config");
      configs = Object.fromEntries(json.services.map((s) => [s.name, s.config]));
    } catch {
      // the next round tries again
    }
  }

  document.getElementById("explain").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const q = new URLSearchParams({ service: form.get("service"), method: form.get("method"), path: form.get("path") });
    for (const line of String(form.get("headers")).split("\n")) if (line.includes(":")) q.append("header", line.trim());
    const out = document.getElementById("explanation");
    try {
      const why = await get("/api/explain?" + q);
      const lines = [why.request.method + " " + why.service + why.request.path, "route: " + (why.route ? "#" + why.route.index + " " + JSON.stringify(why.route.match ?? {}) : "the default (no route matched)")];
      for (const s of why.splits) lines.push("split: " + s.splitter + " #" + s.index + " (weight " + s.weight + ")");
      if (why.target) lines.push("target: " + why.target.service + (why.target.subset ? " / " + why.target.subset : ""));
      if (why.path !== why.request.path) lines.push("path sent: " + why.path);
      if (why.balancer) lines.push("balancer: " + why.balancer);
      lines.push("endpoints: " + (why.candidates.length ? why.candidates.map((c) => c.id + " (" + c.health + ")").join(", ") : "none"));
      if (why.error) lines.push("fails: " + why.error.code + ": " + why.error.message);
      out.textContent = lines.join("\n");
      out.className = "";
    } catch (err) {
      out.textContent = "error: " + err.message;
    }
  });

  loadConfigs().then(tick);
  setInterval(tick, 500);
  setInterval(loadConfigs, 5000);
})();
`;
