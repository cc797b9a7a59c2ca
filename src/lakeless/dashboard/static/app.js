// lakeless dashboard: plain JavaScript, no framework, nothing loaded from elsewhere.
// Live numbers and anomalies arrive as server-sent events (/events, one "tick" a second);
// the fleet, one car's readings and the registry are fetched from /api as they change.
"use strict";

const $ = (selector) => document.querySelector(selector);
const MAX_FEED_ROWS = 100;
const CAR_SIGNALS = [
  { title: "speed (km/h)", series: ["speed"] },
  { title: "coolant temperature (°C)", series: ["coolant_temp"] },
  { title: "battery voltage (V)", series: ["battery_voltage"] },
  { title: "engine vibration amplitude", series: ["engine_vibration_amplitude"] },
  { title: "tire pressures", series: ["tire_pressure_1_1", "tire_pressure_1_2", "tire_pressure_2_1", "tire_pressure_2_2"] },
  { title: "current draw (A)", series: ["current_draw"] },
];
const COLORS = ["#4fb3ff", "#3ecf8e", "#f5b942", "#c78bff", "#ff8a5c"];

const ui = {
  config: null,
  stagesBuilt: false,
  history: {},
  seen: new Set(),
  anomaliesShown: 0,
  modelsRevision: null,
  models: [],
  selectedModel: null,
  pickedModel: null,
  selectedCar: null,
  carTimer: null,
  job: null,
};

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
    ctx.fillText(fmtNum(value, 4), 2, yy + 3);
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

function addAnomalies(items, flash) {
  const body = $("#anomaly-feed tbody");
  // items come newest first: insert the oldest first so the newest ends on top.
  for (const a of [...items].reverse()) {
    if (ui.seen.has(a.id)) continue;
    ui.seen.add(a.id);
    const features = (a.top_features || [])
      .map((f) => `${f.name}=${fmtNum(f.value)}`)
      .join(", ");
    const row = el(
      "tr", { class: "anomaly" + (flash ? " new" : ""), dataset: { id: String(a.id), car: a.car_id } },
      el("td", { title: fmtDateTime(a.ts) }, fmtTime(a.ts)),
      el("td", {}, a.car_id),
      el("td", {}, `${fmtNum(a.score)} / ${fmtNum(a.threshold)}`),
      el("td", {}, `${a.model} v${a.model_version}`),
      el("td", { class: "feat", title: features }, features),
      el("td", { class: "label" }, a.failure || ""),
    );
    row.addEventListener("click", () => selectCar(a.car_id));
    body.prepend(row);
    ui.anomaliesShown += 1;
  }
  while (body.rows.length > MAX_FEED_ROWS) body.deleteRow(body.rows.length - 1);
  $("#anomaly-count").textContent = `${fmtInt(ui.anomaliesShown)} shown, newest first`;
}

// ---- fleet and one car --------------------------------------------------------------------

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

async function loadFleet() {
  try {
    const fleet = await getJSON("/api/cars");
    const body = $("#fleet tbody");
    body.textContent = "";
    if (!fleet.available) {
      $("#fleet-count").textContent = fleet.error || "twin not available";
      return;
    }
    $("#fleet-count").textContent = `${fleet.count} cars, ${fleet.open} in a failure episode`;
    for (const car of fleet.cars) {
      const status = car.episode_open
        ? el("span", { class: "status-anomaly" }, "anomaly")
        : el("span", { class: "status-ok" }, "ok");
      const row = el(
        "tr", { class: "car" + (car.car_id === ui.selectedCar ? " selected" : ""), dataset: { car: car.car_id } },
        el("td", {}, car.car_id),
        el("td", {}, car.model || "–"),
        el("td", { title: fmtDateTime(car.last_ts) }, fmtAgo(car.last_ts)),
        el("td", {}, status, car.failure ? el("span", { class: "label" }, ` (${car.failure})`) : ""),
        el("td", {}, fmtInt(car.anomalies)),
        el("td", {}, fmtInt(car.events)),
      );
      row.addEventListener("click", () => selectCar(car.car_id));
      body.append(row);
    }
  } catch (error) {
    $("#fleet-count").textContent = `error: ${error.message}`;
  }
}

function selectCar(carId) {
  ui.selectedCar = carId;
  for (const row of document.querySelectorAll("#fleet tbody tr")) {
    row.classList.toggle("selected", row.dataset.car === carId);
  }
  const panel = $("#car-detail");
  panel.hidden = false;
  $("#car-title").textContent = carId;
  const charts = $("#car-charts");
  charts.textContent = "";
  for (const spec of CAR_SIGNALS) {
    const legend = spec.series.length > 1
      ? spec.series.map((name, i) => `<span style="color:${COLORS[i]}">${name.replace("tire_pressure_", "")}</span>`).join(" ")
      : "";
    const title = el("div", { class: "title" }, el("span", {}, spec.title));
    const legendNode = el("span", {});
    legendNode.innerHTML = legend;
    title.append(legendNode);
    charts.append(el("div", { class: "chart" }, title, el("canvas", { class: "chart-canvas", dataset: { signal: spec.series[0] } })));
  }
  clearInterval(ui.carTimer);
  loadCar();
  ui.carTimer = setInterval(loadCar, 2000);
}

async function loadCar() {
  const carId = ui.selectedCar;
  if (!carId) return;
  try {
    const data = await getJSON(`/api/cars/${encodeURIComponent(carId)}?readings=${ui.config.car_readings}`);
    if (carId !== ui.selectedCar) return;
    const car = data.car;
    const episode = car.episode_open
      ? `in a failure episode since ${fmtTime(car.episode_since)} (${car.episode_anomalies} anomalies)`
      : "no open failure episode";
    $("#car-note").textContent =
      `${car.model || ""} · ${fmtInt(car.events)} events · ${fmtInt(car.anomalies)} anomalies · ${episode}` +
      (car.failure ? ` · label: ${car.failure}` : "") + ` · last ${data.readings.length} readings`;
    const markers = data.anomalies.map((a) => a.ts);
    const canvases = document.querySelectorAll("#car-charts canvas");
    CAR_SIGNALS.forEach((spec, index) => {
      const series = spec.series.map((name, i) => ({
        name,
        color: COLORS[i % COLORS.length],
        points: data.readings.map((r) => [r.ts, r.features[name]]),
      }));
      drawLineChart(canvases[index], series, markers);
    });
  } catch (error) {
    $("#car-note").textContent = `error: ${error.message}`;
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
    const data = await getJSON("/api/models");
    ui.models = data.models;
    const body = $("#models tbody");
    body.textContent = "";
    const live = data.live[data.model];
    $("#models-note").textContent = data.error
      ? `registry: ${data.error}`
      : `${data.models.length} versions · live: ${live ? `${data.model} v${live}` : "none"}`;
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
      body: JSON.stringify({ minutes }),
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
  const source = new EventSource("/events");
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

async function main() {
  ui.config = await getJSON("/api/config");
  $("#cluster").textContent = `Kafka ${ui.config.bootstrap_servers}`;
  $("#train-minutes").value = ui.config.train_minutes;
  if (ui.config.train_enabled) $("#train-form").addEventListener("submit", startTraining);
  else $("#train-form").hidden = true;
  $("#car-close").addEventListener("click", () => {
    ui.selectedCar = null;
    clearInterval(ui.carTimer);
    $("#car-detail").hidden = true;
  });
  connect();
  loadFleet();
  setInterval(loadFleet, 3000);
}

main();
