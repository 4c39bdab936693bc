/* livechat reports page: figures over time from GET /api/reports, drawn as inline SVG by this
 * module (no chart library, no other origin), with a table under each chart and the agent
 * leaderboard. Every text goes in with textContent. */

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const W = 720, H = 220, L = 44, R = 12, T = 12, B = 28;
const SERIES = 6;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, String(value));
  }
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return Math.round(seconds) + " s";
  if (seconds < 3600) return (seconds / 60).toFixed(seconds < 600 ? 1 : 0) + " min";
  if (seconds < 86400) return (seconds / 3600).toFixed(1) + " h";
  return (seconds / 86400).toFixed(1) + " d";
}

const show = (value, suffix = "") => (value === null || value === undefined ? "–" : String(value) + suffix);

// --- range ------------------------------------------------------------------------------

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function presetRange(preset) {
  const today = new Date(document.body.dataset.today + "T00:00:00Z");
  const back = (days) => isoDay(new Date(today.getTime() - days * 86400000));
  if (preset === "today") return [back(0), back(0)];
  if (preset === "30d") return [back(29), back(0)];
  if (preset === "month") return [back(0).slice(0, 8) + "01", back(0)];
  return [back(6), back(0)];
}

function query() {
  const params = new URLSearchParams({ from: $("report-from").value, to: $("report-to").value,
                                       interval: $("report-interval").value });
  if ($("report-group").value) params.set("group", $("report-group").value);
  return params.toString();
}

// --- charts ----------------------------------------------------------------------------------

function frame(maxValue, labels, fmt) {
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", "aria-hidden": "true" });
  const top = maxValue > 0 ? maxValue : 1;
  const y = (v) => T + (H - T - B) * (1 - v / top);
  for (const f of [0, 0.5, 1]) {
    chart.append(svg("line", { x1: L, x2: W - R, y1: y(top * f), y2: y(top * f), class: "grid-line" }));
    chart.append(svg("text", { x: L - 6, y: y(top * f) + 4, class: "axis-label", "text-anchor": "end",
                               text: fmt ? fmt(top * f) : Number.isInteger(top * f) ? top * f : (top * f).toFixed(1) }));
  }
  const step = (W - L - R) / Math.max(1, labels.length);
  const every = Math.max(1, Math.ceil(labels.length / 8));
  labels.forEach((label, i) => {
    if (i % every === 0) {
      chart.append(svg("text", { x: L + step * (i + 0.5), y: H - 8, class: "axis-label", "text-anchor": "middle",
                                 text: /^\d{4}-\d\d-\d\d/.test(label) ? label.slice(5) : label }));
    }
  });
  return { chart, y, step };
}

function legend(box, groups) {
  if (groups.length < 2) return;
  const list = el("div", { class: "legend" });
  groups.forEach((g, i) => {
    const swatch = svg("svg", { class: "legend-swatch", viewBox: "0 0 10 10" });
    swatch.append(svg("rect", { width: 10, height: 10, class: "series-" + (i % SERIES) }));
    list.append(el("span", {}, swatch, g));
  });
  box.append(list);
}

/** Grouped bars: one bar per group in each interval. */
function bars(box, labels, groups, value) {
  clear(box);
  const max = Math.max(0, ...labels.flatMap((l) => groups.map((g) => value(l, g) || 0)));
  const { chart, y, step } = frame(max, labels);
  const width = Math.max(1, (step * 0.8) / Math.max(1, groups.length));
  labels.forEach((label, i) => {
    groups.forEach((group, j) => {
      const v = value(label, group) || 0;
      if (!v) return;
      const rect = svg("rect", { x: L + step * i + step * 0.1 + width * j, y: y(v), width, height: y(0) - y(v),
                                 class: "bar series-" + (j % SERIES) });
      rect.append(svg("title", { text: `${label} · ${group}: ${v}` }));
      chart.append(rect);
    });
  });
  box.append(chart);
  legend(box, groups);
}

/** One line per group across the intervals (gaps where there is no figure). */
function lines(box, labels, groups, value, fmt) {
  clear(box);
  const max = Math.max(0, ...labels.flatMap((l) => groups.map((g) => value(l, g) || 0)));
  const { chart, y, step } = frame(max, labels, fmt);
  groups.forEach((group, j) => {
    let d = "";
    labels.forEach((label, i) => {
      const v = value(label, group);
      if (v === null || v === undefined) return;
      const x = L + step * (i + 0.5);
      d += (d ? " L" : "M") + x.toFixed(1) + " " + y(v).toFixed(1);
      chart.append(svg("circle", { cx: x, cy: y(v), r: 3, class: "series-" + (j % SERIES) }));
    });
    chart.append(svg("path", { d: d || `M${L} ${y(0)}`, class: "chart-line series-" + (j % SERIES) }));
  });
  box.append(chart);
  legend(box, groups);
}

function heatmap(box, week) {
  clear(box);
  const chart = svg("svg", { viewBox: `0 0 ${W} 190`, class: "chart-svg", "aria-hidden": "true" });
  const max = Math.max(1, ...week.offered.flat());
  const cell = (W - L - R) / 24;
  week.days.forEach((day, d) => {
    chart.append(svg("text", { x: L - 6, y: 14 + d * 22 + 12, class: "axis-label", "text-anchor": "end", text: day }));
    week.offered[d].forEach((n, h) => {
      const rect = svg("rect", { x: L + h * cell, y: 14 + d * 22, width: cell - 2, height: 20,
                                 class: n ? "heat" : "heat-empty", "fill-opacity": n ? (0.15 + 0.85 * n / max).toFixed(2) : 1 });
      rect.append(svg("title", { text: `${day} ${h}:00 · ${n}` }));
      chart.append(rect);
    });
  });
  for (const h of [0, 6, 12, 18, 23]) {
    chart.append(svg("text", { x: L + (h + 0.5) * cell, y: 186, class: "axis-label", "text-anchor": "middle", text: h + "h" }));
  }
  box.append(chart);
}

// --- tables ------------------------------------------------------------------------------------

function fill(id, rows) {
  const body = clear($(id).tBodies[0]);
  for (const cells of rows) {
    const tr = el("tr");
    cells.forEach((c, i) => tr.append(i === 0 ? el("th", { scope: "row", text: c }) : el("td", { class: "num", text: c })));
    body.append(tr);
  }
}

// --- the report ------------------------------------------------------------------------------------

function render(report) {
  const labels = [...new Set(report.rows.map((r) => r.interval))];
  const groups = report.totals.map((t) => t.group);
  const cell = new Map(report.rows.map((r) => [r.interval + "\u0000" + r.group, r]));
  const at = (field) => (label, group) => (cell.get(label + "\u0000" + group) || {})[field];
  const sum = (field) => report.totals.reduce((n, t) => n + (t[field] || 0), 0);

  $("t-offered").textContent = String(sum("offered"));
  $("t-answered").textContent = `${sum("answered")} / ${sum("abandoned")}`;
  const whole = report.totals.length === 1 ? report.totals[0] : null;
  $("t-wait").textContent = whole ? `${duration(whole.wait_p50)} / ${duration(whole.wait_p90)}` : "by group ↓";
  $("t-first").textContent = whole ? duration(whole.first_reply_p50) : "by group ↓";
  $("t-tickets").textContent = `${sum("tickets")} / ${sum("solved")}`;
  const met = sum("first_response_met"), missed = sum("first_response_missed");
  $("t-targets").textContent = met + missed ? Math.round((100 * met) / (met + missed)) + " %" : "–";
  const rated = sum("rated");
  const stars = [1, 2, 3, 4, 5].reduce((n, s) => n + s * sum("csat_" + s), 0);
  $("t-csat").textContent = rated ? `${(stars / rated).toFixed(2)} (${Math.round((100 * rated) / Math.max(1, sum("handled")))} %)` : "–";

  bars($("chart-chats"), labels, groups, at("offered"));
  fill("table-chats", report.totals.map((t) => [t.group, t.offered, t.answered, t.abandoned,
    duration(t.abandoned_wait_avg), t.handled, duration(t.handle_avg)]));
  lines($("chart-wait"), labels, groups, at("wait_p50"), duration);
  fill("table-wait", report.totals.map((t) => [t.group, duration(t.wait_p50), duration(t.wait_p90), duration(t.wait_max),
    duration(t.first_reply_p50), duration(t.first_reply_p90)]));
  bars($("chart-targets"), ["first response", "next response"], groups,
       (label, group) => (report.totals.find((t) => t.group === group) || {})[label === "first response" ? "first_response_met_pct" : "next_response_met_pct"]);
  fill("table-targets", report.totals.map((t) => [t.group, t.tickets, show(t.first_response_met_pct, " %"),
    show(t.next_response_met_pct, " %"), t.tickets_channel_email, t.solved]));
  bars($("chart-csat"), ["1", "2", "3", "4", "5"], groups,
       (score, group) => (report.totals.find((t) => t.group === group) || {})["csat_" + score]);
  fill("table-csat", report.totals.map((t) => [t.group, show(t.csat_avg), t.csat_1, t.csat_2, t.csat_3, t.csat_4, t.csat_5,
    `${t.rated} (${show(t.csat_response_rate, " %")})`]));
  const conc = new Map(report.concurrency.map((c) => [c.interval, c]));
  lines($("chart-concurrency"), labels, ["desk"], (label) => (conc.get(label) || {}).chats_per_agent);
  fill("table-concurrency", report.concurrency.filter((c) => c.online_hours || c.busy_hours)
    .map((c) => [c.interval, c.online_hours, c.busy_hours, show(c.chats_per_agent)]));
  heatmap($("chart-week"), report.week);
  fill("table-week", report.busiest.map((b) => [b.weekday, b.hour + ":00", b.offered]));
  fill("leaderboard", report.leaderboard.map((a) => [a.agent, a.chats, duration(a.first_reply_p50), duration(a.handle_avg),
    show(a.csat_avg), a.rated, a.ticket_responses, a.online_hours, show(a.chats_per_agent)]));
  $("leaderboard-empty").hidden = report.leaderboard.length > 0;
}

async function load() {
  const q = query();
  $("report-csv").href = "/api/reports.csv?" + q;
  $("report-status").textContent = "Loading…";
  document.body.dataset.ready = "0";
  try {
    const response = await fetch("/api/reports?" + q, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) {
      $("report-status").textContent = body.error || "The report could not be made.";
      return;
    }
    render(body);
    $("report-status").textContent = `${body.from} to ${body.to}, times in ${body.tz}.`;
  } catch (err) {
    $("report-status").textContent = "The hub did not answer: try again.";
  } finally {
    document.body.dataset.ready = "1";
  }
}

function usePreset() {
  const preset = $("report-preset").value;
  const custom = preset === "custom";
  $("report-from").disabled = !custom;
  $("report-to").disabled = !custom;
  if (!custom) [$("report-from").value, $("report-to").value] = presetRange(preset);
  load();
}

const conn = $("conn");
if (conn) conn.hidden = true; // no live socket on this page
$("report-preset").addEventListener("change", usePreset);
for (const id of ["report-group", "report-interval", "report-from", "report-to"]) $(id).addEventListener("change", load);
$("report-form").addEventListener("submit", (event) => { event.preventDefault(); load(); });
usePreset();
