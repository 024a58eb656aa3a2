// The recsvc dashboard: polls the server's JSON endpoints and draws them. No build step;
// uPlot (vendored, MIT) draws the charts. Ids from the stream are shown with textContent
// only, never as HTML. window.dashboard exposes the state for tests and curious operators.
"use strict";

const POLL_MS = 2000;
const SERVING_WINDOW_S = 15 * 60;
const dashboard = (window.dashboard = {
  token: null, charts: {}, serving: [], lastSnapshot: null, polls: 0,
  renderedAt: null, errors: [],
});

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}

function fill(id, rows) {
  const target = document.getElementById(id);
  target.replaceChildren(...rows);
}

async function api(path) {
  const headers = dashboard.token ? { Authorization: "Bearer " + dashboard.token } : {};
  const response = await fetch(path, { headers });
  if (response.status === 401) {
    document.getElementById("login").hidden = false;
    throw new Error("unauthorized");
  }
  if (!response.ok && response.status !== 503) throw new Error(path + ": " + response.status);
  return response.json();
}

function fmt(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  return Number(x).toLocaleString(undefined, { maximumFractionDigits: digits });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 120) return fmt(seconds, 1) + " s";
  if (seconds < 7200) return fmt(seconds / 60, 1) + " min";
  return fmt(seconds / 3600, 1) + " h";
}

function chart(id, series, data, axes) {
  const box = document.getElementById(id);
  const width = Math.max(300, box.clientWidth - 10);
  let plot = dashboard.charts[id];
  if (!plot) {
    plot = new uPlot({
      width, height: 200, series: [{}, ...series],
      axes: [{}, ...(axes || [{}])],
      scales: { x: { time: true } },
      legend: { live: false },
    }, data, box);
    dashboard.charts[id] = plot;
  } else {
    plot.setData(data);
  }
  return plot;
}

// --- Stream -------------------------------------------------------------------------------
async function pollStream() {
  const body = await api("/dashboard/api/stream");
  const points = body.points.filter((p) => p.t >= Date.now() / 1000 - 15 * 60);
  const xs = [], events = [], malformed = [];
  for (let k = 1; k < points.length; k++) {
    const dt = points[k].t - points[k - 1].t;
    if (dt <= 0) continue;
    xs.push(points[k].t);
    events.push(Math.max(0, (points[k].events - points[k - 1].events) / dt));
    malformed.push(Math.max(0, (points[k].malformed - points[k - 1].malformed) / dt));
  }
  chart("chart-stream", [
    { label: "events/s", stroke: "#1a56b0" },
    { label: "malformed/s", stroke: "#b3261e", scale: "bad" },
  ], [xs, events, malformed], [{}, { scale: "bad", side: 1, grid: { show: false } }]);
  const s = body.status;
  document.getElementById("broker").textContent = s.kafka ?? "no builder status";
  const span = s.window_span ? s.window_span[1] - s.window_span[0] : null;
  document.getElementById("window").textContent =
    fmt(s.window_events) + " events over " + duration(span);
  document.getElementById("consumed").textContent = fmt(s.events_consumed);
  document.getElementById("malformed").textContent = fmt(s.malformed);
  fill("lag", Object.entries(s.lag || {}).map(([p, lag]) =>
    el("tr", {}, el("td", {}, p), el("td", {}, fmt(lag)))));
}

// --- Models -------------------------------------------------------------------------------
async function pollModels() {
  const body = await api("/dashboard/api/models");
  const refits = body.refits || [];
  chart("chart-models", [
    { label: "training s", stroke: "#6b3fa0" },
    { label: "live HR@10", stroke: "#0b7a3e", scale: "hr" },
    { label: "sequential rules HR@10", stroke: "#c77800", scale: "hr" },
  ], [refits.map((r) => r.trained_at), refits.map((r) => r.training_seconds),
      refits.map((r) => r.live_hit_rate), refits.map((r) => r.rules_hit_rate)],
  [{}, { scale: "hr", side: 1, grid: { show: false } }]);
  const rows = [];
  if (body.refused) {
    rows.push(el("tr", { class: "refused" }, el("td", {}, String(body.refused.version)),
      el("td", { colspan: 8 }, "refused: " + (body.refused.reason || "unreadable"))));
  }
  for (const r of refits.slice(-12).reverse()) {
    rows.push(el("tr", { class: r.version === body.served ? "served" : "" },
      el("td", {}, "v" + r.version + (r.version === body.pinned ? " (pinned)" : "")),
      el("td", {}, new Date(r.trained_at * 1000).toLocaleTimeString()),
      el("td", {}, fmt(r.training_seconds, 3)), el("td", {}, fmt(r.n_users)),
      el("td", {}, fmt(r.n_items)), el("td", {}, fmt(r.live_hit_rate, 3)),
      el("td", {}, fmt(r.rules_hit_rate, 3)), el("td", {}, fmt(r.popularity_hit_rate, 3)),
      el("td", {}, r.sequence ? fmt(r.sequence.weight, 2) : "off")));
  }
  fill("refits", rows);
  const winner = body.tuning && body.tuning.winner;
  const ranker = body.ranker;
  document.getElementById("model-facts").textContent =
    "served v" + (body.served ?? "–") + (body.pinned ? ", pinned v" + body.pinned : "") +
    (winner ? " · tuned: " + winner.factors + " factors, reg " + winner.regularization +
      ", alpha " + winner.alpha : "") +
    (ranker ? " · ranks by " + ranker.chosen + " (" + ranker.reason + ")" : " · ranks by the sum");
  showAttribution(body.attribution, refits.length ? refits[refits.length - 1] : null);
}

function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%"; }

function showAttribution(a, newest) {
  const facts = document.getElementById("attribution-facts");
  const hr = newest && newest.live_hit_rate !== null && newest.live_hit_rate !== undefined
    ? "live HR@10 of v" + newest.version + ": " + fmt(newest.live_hit_rate, 3) + " · " : "";
  if (!a) {
    facts.textContent = hr + "not tracked: start the builder with --impressions-topic (and " +
      "the servers with --bootstrap-servers) to count clicks and purchases per list";
    fill("attribution", []);
    return;
  }
  const hour = (a.service && a.service.last_hour) || {};
  facts.textContent = hr + "last hour: click-through " + pct(hour.click_through) +
    ", conversion " + pct(hour.conversion) + " of " + fmt(hour.lists) + " lists";
  const rows = [];
  const scopes = [["service", a.service || {}], ...Object.entries(a.endpoints || {})];
  for (const [name, windows] of scopes) {
    for (const [window, c] of Object.entries(windows)) {
      const pos = c.clicks_by_position || [];
      rows.push(el("tr", { class: name === "service" ? "served" : "" },
        el("td", {}, name), el("td", {}, window.replace("_", " ")), el("td", {}, fmt(c.lists)),
        el("td", {}, pct(c.click_through)), el("td", {}, pct(c.conversion)),
        el("td", {}, [0, 1, 2].map((k) => fmt(pos[k] || 0)).join(" / "))));
    }
  }
  fill("attribution", rows);
}

// --- Serving ------------------------------------------------------------------------------
function quantile(buckets, q) {
  // buckets: [[upper bound, count in bucket], ...] sorted; linear within a bucket.
  const total = buckets.reduce((a, [, c]) => a + c, 0);
  if (!total) return null;
  let seen = 0, lower = 0;
  for (const [upper, count] of buckets) {
    if (seen + count >= q * total) {
      if (!Number.isFinite(upper)) return lower * 1000;
      return (lower + (upper - lower) * ((q * total - seen) / count)) * 1000;
    }
    seen += count;
    lower = upper;
  }
  return lower * 1000;
}

function intervalStats(now, before) {
  const dt = (now.t - before.t) / 1000;
  const out = {};
  for (const [endpoint, e] of Object.entries(now.endpoints)) {
    if (endpoint.startsWith("/dashboard")) continue;
    const old = before.endpoints[endpoint] || { buckets: {}, count: 0 };
    const bounds = Object.keys(e.buckets).map((le) => [le === "+Inf" ? Infinity : +le, le])
      .sort((a, b) => a[0] - b[0]);
    let previous = 0;
    const buckets = bounds.map(([upper, le]) => {
      const cumulative = e.buckets[le] - (old.buckets[le] || 0);
      const count = cumulative - previous;
      previous = cumulative;
      return [upper, Math.max(0, count)];
    });
    const requests = e.count - (old.count || 0);
    out[endpoint] = { rate: requests / dt, p50: quantile(buckets, 0.5),
                      p95: quantile(buckets, 0.95), p99: quantile(buckets, 0.99) };
  }
  return out;
}

async function pollServing() {
  const snapshot = await api("/dashboard/api/serving");
  snapshot.t = Date.now();
  const before = dashboard.lastSnapshot;
  dashboard.lastSnapshot = snapshot;
  const stats = before ? intervalStats(snapshot, before) : {};
  const all = Object.values(stats);
  const rec = stats["/recommend"] || { rate: 0, p50: null, p95: null, p99: null };
  if (before) {
    dashboard.serving.push([snapshot.t / 1000, all.reduce((a, s) => a + s.rate, 0),
      rec.p50, rec.p95, rec.p99]);
  }
  const cutoff = snapshot.t / 1000 - SERVING_WINDOW_S;
  dashboard.serving = dashboard.serving.filter((p) => p[0] >= cutoff);
  const columns = [0, 1, 2, 3, 4].map((k) => dashboard.serving.map((p) => p[k]));
  chart("chart-serving", [
    { label: "req/s", stroke: "#1a56b0" },
    { label: "/recommend p50 ms", stroke: "#0b7a3e", scale: "ms" },
    { label: "p95 ms", stroke: "#b26a00", scale: "ms" },
    { label: "p99 ms", stroke: "#b3261e", scale: "ms" },
  ], columns, [{}, { scale: "ms", side: 1, grid: { show: false } }]);
  fill("endpoints", Object.entries(stats).filter(([, s]) => s.rate > 0)
    .sort((a, b) => b[1].rate - a[1].rate)
    .map(([endpoint, s]) => el("tr", {}, el("td", {}, endpoint), el("td", {}, fmt(s.rate, 1)),
      el("td", {}, fmt(s.p50, 2)), el("td", {}, fmt(s.p95, 2)), el("td", {}, fmt(s.p99, 2)))));
  const sources = snapshot.sources;
  const answers = Object.values(sources).reduce((a, b) => a + b, 0);
  const errors = Object.entries(snapshot.statuses).filter(([code]) => code >= "400")
    .map(([code, n]) => code + ": " + fmt(n)).join(", ");
  document.getElementById("serving-facts").textContent =
    "popular fallback " + fmt(answers ? (100 * (sources.popular || 0)) / answers : 0, 1) +
    "% of answers · errors since the server started: " + (errors || "none");
}

// --- Health banner ------------------------------------------------------------------------
async function pollHealth() {
  const health = await api("/health");
  const banner = document.getElementById("banner");
  const problems = [];
  const builder = health.builder || {};
  if (builder.state === "kafka_unreachable" || builder.state === "kafka_stalled")
    problems.push("broker degraded (" + builder.state.replace("kafka_", "") + ")");
  if (builder.state === "stale") problems.push("builder stale: no status for " +
    duration(builder.status_age_seconds));
  if (builder.state === "publish_failing")
    problems.push("publishing failing: " + (builder.publish_error || ""));
  if (health.refused_version !== null && health.refused_version !== undefined)
    problems.push("model " + health.refused_version + " refused: " +
      (health.last_error || ""));
  if (health.status === "no_model") problems.push("no model published yet");
  banner.hidden = problems.length === 0;
  banner.textContent = problems.join(" · ");
  // Which builder is active, where, under which lease generation; and who stands by.
  document.getElementById("builder").textContent = builder.active
    ? builder.active + (builder.generation !== null && builder.generation !== undefined
      ? " · lease generation " + builder.generation : "")
    : "no builder status";
  document.getElementById("standbys").textContent = (builder.standbys || []).length
    ? builder.standbys.join(", ") : "none";
  document.getElementById("served").textContent = health.model_version
    ? "serving v" + health.model_version + " (" + duration(health.model_age_seconds) + " old)"
    : "no model yet";
}

// --- Try a user ---------------------------------------------------------------------------
function itemLink(id) {
  return el("a", { class: "item", onclick: () => showItem(id) }, id);
}

function meta(m) {
  return [m.category, m.price !== undefined ? fmt(m.price, 2) : null,
    m.available === false ? "unavailable" : null, (m.tags || []).join(" ")]
    .filter(Boolean).join(" · ");
}

async function tryUser(user) {
  const body = await api("/dashboard/api/user?n=10&user=" + encodeURIComponent(user));
  const target = document.getElementById("try-result");
  if (body.error) { target.replaceChildren(el("p", { class: "error" }, body.message)); return; }
  const recs = el("table", { class: "small", id: "try-recommendations" },
    el("thead", {}, el("tr", {}, el("th", {}, "item"), el("th", {}, "score"),
      el("th", {}, "why"), el("th", {}, "catalog"))),
    el("tbody", {}, ...body.recommendations.map((r) => el("tr", {},
      el("td", {}, itemLink(r.item)), el("td", {}, fmt(r.score, 3)), el("td", {}, r.reason),
      el("td", {}, meta(r))))));
  const seen = el("ul", {}, ...body.window_items.slice(0, 30).map((i) =>
    el("li", {}, itemLink(i.item), " ", el("span", { class: "muted" }, meta(i)))));
  target.replaceChildren(el("div", { class: "columns" },
    el("div", {}, el("h3", {}, body.window_item_count + " items in the window"), seen),
    el("div", {}, el("h3", {}, "recommendations (" + body.source + ")"), recs)));
}

async function showItem(id) {
  const body = await api("/dashboard/api/item?item=" + encodeURIComponent(id));
  const list = (rows, label) => el("div", {}, el("h3", {}, label),
    el("ul", {}, ...rows.map((r) => el("li", {}, itemLink(r.item_id), " ",
      el("span", { class: "muted" }, fmt(r.score ?? r.lift, 3))))));
  document.getElementById("item-result").replaceChildren(
    el("h3", {}, id + " " + meta(body.metadata)),
    el("div", { class: "columns" }, list(body.similar, "similar items"),
      list(body.bought_together, "bought together (lift)")));
}

// --- Loop ---------------------------------------------------------------------------------
async function poll() {
  const results = await Promise.allSettled([pollHealth(), pollStream(), pollModels(),
    pollServing()]);
  const failed = results.filter((r) => r.status === "rejected");
  dashboard.errors = failed.map((r) => String(r.reason));
  dashboard.polls += 1;
  if (dashboard.renderedAt === null && !failed.length) dashboard.renderedAt = performance.now();
  document.getElementById("updated").textContent = failed.length
    ? "update failed: " + dashboard.errors[0]
    : "updated " + new Date().toLocaleTimeString();
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  dashboard.token = document.getElementById("token").value;
  try {
    await api("/dashboard/api/models");
    document.getElementById("login").hidden = true;
    document.getElementById("login-error").textContent = "";
    poll();
  } catch (error) {
    document.getElementById("login-error").textContent = "wrong token";
  }
});

document.getElementById("try-form").addEventListener("submit", (event) => {
  event.preventDefault();
  tryUser(document.getElementById("try-user").value).catch((e) => dashboard.errors.push(e));
});

poll();
setInterval(poll, POLL_MS);
