// lakeless dashboard: plain JavaScript, no framework, nothing loaded from elsewhere.
// The page builds itself from the pipeline's schema (GET /api/pipelines): the entity table, one
// chart per unit of its features. Live numbers and anomalies arrive as server-sent events
// (/events, one "tick" a second); the entities, one entity's readings and the registry are
// fetched from /api as they change. Every request names the pipeline (?pipeline=NAME).
"use strict";

const $ = (selector) => document.querySelector(selector);
const MAX_FEED_ROWS = 100;
const COLORS = ["#4fb3ff", "#3ecf8e", "#f5b942", "#c78bff", "#ff8a5c", "#5ce1e6", "#ff6fa8", "#b8e05c"];

const ui = {
  pipeline: new URLSearchParams(location.search).get("pipeline"),
  layout: null, // the pipeline's roles, features, charts (GET /api/pipelines)
  config: null,
  stagesBuilt: false,
  history: {},
  seen: new Set(),
  anomaliesShown: 0,
  modelsRevision: null,
  models: [],
  selectedModel: null,
  pickedModel: null,
  selected: null, // the entity whose charts are shown
  entityTimer: null,
  job: null,
};

// Every API call names the pipeline the page shows.
function api(path, params = {}) {
  const query = new URLSearchParams({ pipeline: ui.pipeline, ...params });
  return `${path}?${query}`;
}
function capitalize(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}
function plural(noun) {
  return noun.endsWith("s") ? noun : noun + "s";
}

// ---- formatting ---------------------------------------------------------------------------

function fmtRate(value) {
  if (value === null || value === undefined) return "–";
  if (value >= 10000) return (value / 1000).toFixed(1) + "k";
  return value >= 100 ? Math.round(value).toLocaleString() : value.toFixed(1);
}
function fmtInt(value) {
  return value === null || value === undefined ? "–" : Number(value).toLocaleString();
}
function fmtNum(value, digits = 3) {
  if (value === null || value === undefined) return "–";
  return Math.abs(value) >= 1000 ? value.toFixed(0) : Number(value.toPrecision(digits)).toString();
}
// Axis labels fit the chart's margin (1085240592 -> "1.09G") and stay distinct on a narrow
// range of large values (2039.67 and 2040.33, not "2040" twice).
function fmtAxis(value, span) {
  const size = Math.abs(value);
  const digits = Math.min(8, Math.max(3, Math.ceil(Math.log10(Math.max(size, 1e-12) / span)) + 2));
  for (const [scale, suffix] of [[1e9, "G"], [1e6, "M"], [1e4, "k"]]) {
    if (size >= scale) return Number((value / scale).toPrecision(digits)) + suffix;
  }
  return Number(value.toPrecision(digits)).toString();
}
function fmtPct(value) {
  return value === null || value === undefined ? "–" : (100 * value).toFixed(1) + "%";
}
function fmtTime(ms) {
  return ms ? new Date(ms).toLocaleTimeString([], { hour12: false }) : "–";
}
function fmtDateTime(ms) {
  if (!ms) return "–";
  const d = new Date(ms);
  return d.toLocaleDateString() + " " + d.toLocaleTimeString([], { hour12: false });
}
function fmtAgo(ms) {
  if (!ms) return "–";
  const s = (Date.now() - ms) / 1000;
  if (s < 0) return "now";
  if (s < 60) return s.toFixed(0) + " s ago";
  if (s < 3600) return (s / 60).toFixed(0) + " min ago";
  return (s / 3600).toFixed(1) + " h ago";
}
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "title") node.title = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// ---- charts on <canvas>, drawn by hand ----------------------------------------------------

function setupCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 300;
  const height = canvas.clientHeight || 100;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return { ctx, width, height };
}

function drawSparkline(canvas, values, color = COLORS[0]) {
  const { ctx, width, height } = setupCanvas(canvas);
  if (values.length < 2) return;
  const max = Math.max(...values, 1e-9);
  const step = width / (values.length - 1);
  const y = (v) => height - 2 - (v / max) * (height - 4);
  ctx.beginPath();
  values.forEach((v, i) => (i ? ctx.lineTo(i * step, y(v)) : ctx.moveTo(0, y(v))));
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  ctx.stroke();
  ctx.lineTo(width, height);
  ctx.lineTo(0, height);
  ctx.closePath();
  ctx.globalAlpha = 0.15;
  ctx.fillStyle = color;
  ctx.fill();
  ctx.globalAlpha = 1;
  canvas.dataset.points = String(values.length);
}

// series: [{name, color, points: [[x, y], ...]}]; markers: x values drawn as red lines.
function drawLineChart(canvas, series, markers = []) {
  const { ctx, width, height } = setupCanvas(canvas);
  const pad = { left: 44, right: 6, top: 6, bottom: 16 };
  const all = series.flatMap((s) => s.points);
  canvas.dataset.points = String(all.length);
  if (all.length === 0) {
    ctx.fillStyle = "#8595a8";
    ctx.font = "12px sans-serif";
    ctx.fillText("no readings yet", pad.left, height / 2);
    return;
  }
  let [xMin, xMax] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [yMin, yMax] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (xMax === xMin) xMax = xMin + 1;
  if (yMax === yMin) { yMax += 1; yMin -= 1; }
  const span = yMax - yMin;
  yMin -= span * 0.05; yMax += span * 0.05;
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const sx = (x) => pad.left + ((x - xMin) / (xMax - xMin)) * plotW;
  const sy = (y) => pad.top + (1 - (y - yMin) / (yMax - yMin)) * plotH;

  ctx.strokeStyle = "#263140";
  ctx.lineWidth = 1;
  ctx.fillStyle = "#8595a8";
  ctx.font = "10px sans-serif";
  for (let i = 0; i <= 3; i++) {
    const value = yMin + ((yMax - yMin) * i) / 3;
    const yy = sy(value);
    ctx.beginPath(); ctx.moveTo(pad.left, yy); ctx.lineTo(width - pad.right, yy); ctx.stroke();
    ctx.fillText(fmtAxis(value, (yMax - yMin) / 3), 2, yy + 3);
  }
  ctx.fillText(fmtTime(xMin), pad.left, height - 3);
  const endLabel = fmtTime(xMax);
  ctx.fillText(endLabel, width - pad.right - ctx.measureText(endLabel).width, height - 3);

  ctx.strokeStyle = "rgba(255, 92, 92, 0.55)";
  for (const x of markers) {
    if (x < xMin || x > xMax) continue;
    ctx.beginPath(); ctx.moveTo(sx(x), pad.top); ctx.lineTo(sx(x), pad.top + plotH); ctx.stroke();
  }
  series.forEach((s, index) => {
    ctx.beginPath();
    s.points.forEach(([x, y], i) => (i ? ctx.lineTo(sx(x), sy(y)) : ctx.moveTo(sx(x), sy(y))));
    ctx.strokeStyle = s.color || COLORS[index % COLORS.length];
    ctx.lineWidth = 1.5;
    ctx.stroke();
  });
  canvas.dataset.drawn = "1";
}

// ---- pipeline stats -----------------------------------------------------------------------

function buildStages(stats) {
  const box = $("#stages");
  box.textContent = "";
  stats.stages.forEach((stage, index) => {
    const card = el(
      "div", { class: "stage", dataset: { stage: stage.name } },
      el("h3", {}, stage.name),
      el("div", {}, el("span", { class: "rate", id: `rate-${stage.name}` }, "–"), el("span", { class: "unit" }, " events/s")),
      el("div", { class: "lag", id: `lag-${stage.name}` }, stage.group ? "lag –" : "\u00a0"),
      el("div", { class: "out", id: `out-${stage.name}` }),
      el("canvas", { id: `spark-${stage.name}` }),
    );
    if (stage.group) card.title = `consumer group ${stage.group}, reads ${stage.reads.join(", ")}`;
    if (index < stats.stages.length - 1) card.append(el("span", { class: "arrow" }, "\u25B6"));
    box.append(card);
  });
  ui.stagesBuilt = true;
}

function updateStats(stats) {
  if (!ui.stagesBuilt) buildStages(stats);
  if (stats.history) ui.history = stats.history;
  for (const stage of stats.stages) {
    const points = (ui.history[stage.name] = ui.history[stage.name] || []);
    if (!stats.history) {
      points.push(stage.rate || 0);
      if (points.length > 120) points.shift();
    }
    const rate = $(`#rate-${stage.name}`);
    rate.textContent = fmtRate(stage.rate);
    rate.dataset.value = stage.rate === null ? "" : String(stage.rate);
    if (stage.group) {
      const lag = $(`#lag-${stage.name}`);
      lag.textContent = `lag ${fmtInt(stage.lag)}`;
      lag.dataset.value = stage.lag === null ? "" : String(stage.lag);
      lag.classList.toggle("high", (stage.lag || 0) > 10000);
    }
    const outs = Object.entries(stage.out).map(([topic, r]) => `${topic} ${fmtRate(r)}/s`);
    $(`#out-${stage.name}`).textContent = outs.length ? "\u2192 " + outs.join(" · ") : "";
    drawSparkline($(`#spark-${stage.name}`), points);
  }
  $("#stats-note").textContent = stats.error
    ? `Kafka: ${stats.error}`
    : `rates over ${stats.window_s}s · ${fmtInt(stats.anomalies_seen)} anomalies seen`;
  const model = ui.config ? ui.config.model : null;
  const live = model ? stats.live_models[model] : undefined;
  const badge = $("#live-model");
  badge.textContent = live ? `${model} v${live} live` : `${model || "model"}: none live`;
  badge.dataset.version = live ? String(live) : "";
  if (ui.modelsRevision !== stats.models_revision) {
    ui.modelsRevision = stats.models_revision;
    loadModels();
  }
}

// ---- anomaly feed -------------------------------------------------------------------------

function buildTables() {
  const layout = ui.layout;
  const noun = layout.entity;
  const feed = ["time", noun, ...(layout.label ? [layout.label] : []), "score / thr.", "model", "top features"];
  $("#anomaly-feed thead").replaceChildren(el("tr", {}, ...feed.map((h) => el("th", {}, h))));
  const table = [noun, ...layout.context, "last seen", "status", "anomalies", "events"];
  $("#entities thead").replaceChildren(el("tr", {}, ...table.map((h) => el("th", {}, h))));
  $("#entities-title").textContent = capitalize(plural(noun));
}

function addAnomalies(items, flash) {
  const layout = ui.layout;
  const body = $("#anomaly-feed tbody");
  // items come newest first: insert the oldest first so the newest ends on top.
  for (const a of [...items].reverse()) {
    if (ui.seen.has(a.id)) continue;
    ui.seen.add(a.id);
    const key = a[layout.key];
    const time = a[layout.time];
    const features = (a.top_features || [])
      .map((f) => `${f.name}=${fmtNum(f.value)}`)
      .join(", ");
    const score = a.score === null ? "non-finite" : fmtNum(a.score);
    const cells = [
      el("td", { title: fmtDateTime(time) }, fmtTime(time)),
      el("td", {}, key),
      ...(layout.label ? [el("td", { class: "label" }, a[layout.label] || "")] : []),
      el("td", {}, `${score} / ${fmtNum(a.threshold)}`),
      el("td", {}, `${a.model} v${a.model_version}`),
      el("td", { class: "feat", title: features }, features),
    ];
    const row = el(
      "tr", { class: "anomaly" + (flash ? " new" : ""), dataset: { id: String(a.id), key } },
      ...cells,
    );
    row.addEventListener("click", () => selectEntity(key));
    body.prepend(row);
    ui.anomaliesShown += 1;
  }
  while (body.rows.length > MAX_FEED_ROWS) body.deleteRow(body.rows.length - 1);
  $("#anomaly-count").textContent = `${fmtInt(ui.anomaliesShown)} shown, newest first`;
}

// ---- entities and one entity --------------------------------------------------------------

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

function context(state, name) {
  const value = state.reading ? state.reading[name] : null;
  return value === null || value === undefined ? "–" : String(value);
}

async function loadEntities() {
  const noun = ui.layout.entity;
  try {
    const twin = await getJSON(api("/api/entities"));
    const body = $("#entities tbody");
    body.textContent = "";
    if (!twin.available) {
      $("#entity-count").textContent = twin.error || "twin not available";
      return;
    }
    const many = twin.count === 1 ? noun : plural(noun);
    $("#entity-count").textContent = `${fmtInt(twin.count)} ${many}, ${twin.open} in a failure episode`;
    for (const state of twin.entities) {
      const status = state.episode_open
        ? el("span", { class: "status-anomaly" }, "anomaly")
        : el("span", { class: "status-ok" }, "ok");
      const row = el(
        "tr", { class: "entity" + (state.key === ui.selected ? " selected" : ""), dataset: { key: state.key } },
        el("td", {}, state.key),
        ...ui.layout.context.map((name) => el("td", {}, context(state, name))),
        el("td", { title: fmtDateTime(state.last_time) }, fmtAgo(state.last_time)),
        el("td", {}, status, state.label ? el("span", { class: "label" }, ` (${state.label})`) : ""),
        el("td", {}, fmtInt(state.anomalies)),
        el("td", {}, fmtInt(state.events)),
      );
      row.addEventListener("click", () => selectEntity(state.key));
      body.append(row);
    }
  } catch (error) {
    $("#entity-count").textContent = `error: ${error.message}`;
  }
}

function selectEntity(key) {
  ui.selected = key;
  for (const row of document.querySelectorAll("#entities tbody tr")) {
    row.classList.toggle("selected", row.dataset.key === key);
  }
  $("#entity-detail").hidden = false;
  $("#entity-title").textContent = `${capitalize(ui.layout.entity)} ${key}`;
  const charts = $("#entity-charts");
  charts.textContent = "";
  ui.layout.charts.forEach((chart, index) => {
    const legend = el("span", { class: "legend" });
    if (chart.features.length > 1) {
      chart.labels.forEach((label, i) => {
        legend.append(el("span", { style: `color:${COLORS[i % COLORS.length]}` }, label));
      });
    }
    const title = el("div", { class: "title" }, el("span", {}, chart.title), legend);
    const canvas = el("canvas", { class: "chart-canvas", dataset: { chart: String(index), features: chart.features.join(",") } });
    charts.append(el("div", { class: "chart" }, title, canvas));
  });
  clearInterval(ui.entityTimer);
  loadEntity();
  ui.entityTimer = setInterval(loadEntity, 2000);
}

async function loadEntity() {
  const key = ui.selected;
  if (!key) return;
  const layout = ui.layout;
  try {
    const data = await getJSON(api(`/api/entities/${encodeURIComponent(key)}`, { readings: ui.config.readings }));
    if (key !== ui.selected) return;
    const state = data.entity;
    const episode = state.episode_open
      ? `in a failure episode since ${fmtTime(state.episode_since)} (${state.episode_anomalies} anomalies)`
      : "no open failure episode";
    const contexts = layout.context.map((name) => context(state, name)).filter((v) => v !== "–");
    $("#entity-note").textContent =
      [...contexts, `${fmtInt(state.events)} readings`, `${fmtInt(state.anomalies)} anomalies`, episode].join(" · ") +
      (state.label ? ` · ${layout.label}: ${state.label}` : "") + ` · last ${data.readings.length} readings`;
    const markers = data.anomalies.map((a) => a.time);
    const canvases = document.querySelectorAll("#entity-charts canvas");
    layout.charts.forEach((chart, index) => {
      const series = chart.features.map((name, i) => ({
        name,
        color: COLORS[i % COLORS.length],
        points: data.readings
          .map((r) => [r.time, Number(r.reading[name])])
          .filter((p) => Number.isFinite(p[1])),
      }));
      drawLineChart(canvases[index], series, markers);
    });
  } catch (error) {
    $("#entity-note").textContent = `error: ${error.message}`;
  }
}

// ---- models and training ------------------------------------------------------------------

function windowText(lineage) {
  if (!lineage || !lineage.topic) return "–";
  const when = lineage.start_ms
    ? `${fmtDateTime(lineage.start_ms)} → ${lineage.end_ms ? fmtTime(lineage.end_ms) : "now"}`
    : "";
  const parts = Object.keys(lineage.partitions || {}).length;
  return `${lineage.spec || "window"} of ${lineage.topic}: ${fmtInt(lineage.num_records)} records, ${parts} partitions ${when}`;
}

function metricsText(m) {
  if (!m || m.precision === undefined) return "not evaluated";
  return `P ${fmtPct(m.precision)} · R ${fmtPct(m.recall)} · F1 ${fmtPct(m.f1)} · FA/10k ${fmtNum(m.false_alarms_per_10k)}`;
}

function modesText(m) {
  if (!m || !m.per_mode) return "";
  return Object.entries(m.per_mode)
    .map(([mode, v]) => `${mode} ${fmtPct(v.recall)}/${fmtPct(v.episode_recall)}`)
    .join(", ");
}

async function loadModels() {
  try {
    const data = await getJSON(api("/api/models"));
    ui.models = data.models;
    const body = $("#models tbody");
    body.textContent = "";
    const live = data.live[data.model];
    $("#models-note").textContent = data.error
      ? `registry: ${data.error}`
      : `${data.models.length} version${data.models.length === 1 ? "" : "s"} · live: ${live ? `${data.model} v${live}` : "none"}`;
    for (const m of data.models) {
      const row = el(
        "tr", { class: "model", dataset: { name: m.name, version: String(m.version), stage: m.stage } },
        el("td", {}, `${m.name} v${m.version}`),
        el("td", { class: `stage-${m.stage}` }, m.stage),
        el("td", {}, fmtDateTime(m.created_at)),
        el("td", { class: "wrap" }, windowText(m.lineage)),
        el("td", {}, fmtNum(m.threshold, 4)),
        el("td", {}, metricsText(m.metrics)),
        el("td", { class: "wrap feat" }, modesText(m.metrics)),
        el("td", {}, m.report_image ? "image" : "–"),
      );
      row.addEventListener("click", () => {
        ui.pickedModel = { name: m.name, version: m.version };
        showReport(m);
      });
      body.append(row);
    }
    // The report shown follows the live version, unless the user picked a version.
    const picked = ui.pickedModel;
    const chosen =
      (picked && data.models.find((m) => m.name === picked.name && m.version === picked.version)) ||
      data.models.find((m) => m.name === data.model && m.version === live) ||
      data.models[0];
    if (chosen) showReport(chosen);
  } catch (error) {
    $("#models-note").textContent = `error: ${error.message}`;
  }
}

function showReport(model) {
  ui.selectedModel = { name: model.name, version: model.version };
  for (const row of document.querySelectorAll("#models tbody tr")) {
    row.classList.toggle("selected", row.dataset.name === model.name && row.dataset.version === String(model.version));
  }
  const figure = $("#report");
  if (!model.report_image) {
    figure.hidden = true;
    return;
  }
  figure.hidden = false;
  $("#report-caption").textContent = `training report of ${model.name} v${model.version} (${model.stage})`;
  const img = $("#report-image");
  if (img.getAttribute("src") !== model.report_image) img.src = model.report_image;
}

function updateJob(job) {
  if (!job) return;
  ui.job = job;
  const status = $("#train-status");
  status.className = job.status;
  status.dataset.status = job.status;
  status.dataset.job = job.id;
  const button = $("#train-button");
  button.disabled = job.status === "running";
  if (job.status === "running") {
    const last = job.output.length ? job.output[job.output.length - 1] : "starting";
    status.textContent = `job ${job.id}: training on the last ${job.minutes} min… ${job.elapsed_s}s · ${last}`;
  } else if (job.status === "succeeded" && job.result) {
    const r = job.result;
    status.textContent = `job ${job.id}: ${r.ref} trained on ${fmtInt(r.rows)} rows in ${job.elapsed_s}s and ${r.stage === "live" ? "promoted (live)" : "registered"}`;
    status.dataset.version = String(r.version);
  } else {
    status.textContent = `job ${job.id} ${job.status}: ${job.error || ""}`;
  }
}

async function startTraining(event) {
  event.preventDefault();
  const minutes = parseFloat($("#train-minutes").value);
  $("#train-button").disabled = true;
  try {
    updateJob(await getJSON("/api/train", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ minutes, pipeline: ui.pipeline }),
    }));
  } catch (error) {
    const status = $("#train-status");
    status.className = "failed";
    status.textContent = `cannot start training: ${error.message}`;
    $("#train-button").disabled = false;
  }
}

// ---- live stream --------------------------------------------------------------------------

function connect() {
  const source = new EventSource(api("/events"));
  const conn = $("#conn");
  let first = true;
  source.onopen = () => { conn.textContent = "live"; conn.classList.add("ok"); };
  source.onerror = () => { conn.textContent = "reconnecting"; conn.classList.remove("ok"); };
  source.addEventListener("tick", (event) => {
    const data = JSON.parse(event.data);
    updateStats(data.stats);
    addAnomalies(data.anomalies, !first);
    first = false;
    if (data.job && (!ui.job || data.job.id === ui.job.id || data.job.started_at >= ui.job.started_at)) {
      updateJob(data.job);
    }
  });
}

async function loadPipelines() {
  const list = await getJSON("/api/pipelines");
  const select = $("#pipeline");
  const shown = new Set([...select.options].map((o) => o.value));
  for (const p of list.pipelines) {
    if (shown.has(p.pipeline)) continue;
    select.append(el("option", { value: p.pipeline }, p.registered ? p.pipeline : `${p.pipeline} (built-in)`));
  }
  return list;
}

async function main() {
  const list = await loadPipelines();
  ui.pipeline = ui.pipeline || list.default;
  ui.layout = list.pipelines.find((p) => p.pipeline === ui.pipeline);
  if (!ui.layout) {
    const error = $("#page-error");
    error.hidden = false;
    error.textContent = `unknown pipeline ${ui.pipeline}; showing ${list.default}`;
    ui.pipeline = list.default;
    ui.layout = list.pipelines.find((p) => p.pipeline === ui.pipeline);
  }
  const select = $("#pipeline");
  select.value = ui.pipeline;
  select.addEventListener("change", () => {
    location.search = new URLSearchParams({ pipeline: select.value }).toString();
  });
  setInterval(() => loadPipelines().catch(() => {}), 15000);
  document.title = `lakeless · ${ui.pipeline}`;
  $("#pipeline-name").textContent = ui.pipeline;
  ui.config = await getJSON(api("/api/config"));
  $("#cluster").textContent = `Kafka ${ui.config.bootstrap_servers}`;
  $("#train-minutes").value = ui.config.train_minutes;
  $("#train-model").textContent = ui.config.model;
  if (ui.config.train_enabled) $("#train-form").addEventListener("submit", startTraining);
  else $("#train-form").hidden = true;
  $("#entity-close").addEventListener("click", () => {
    ui.selected = null;
    clearInterval(ui.entityTimer);
    $("#entity-detail").hidden = true;
  });
  buildTables();
  connect();
  loadEntities();
  setInterval(loadEntities, 3000);
}

main();
