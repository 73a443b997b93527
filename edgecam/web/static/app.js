// The status page: /api/status once a second; the preview is the MJPEG stream, or, when the
// stream is refused (too many viewers) or breaks, /preview.jpg polled at the preview's rate.
"use strict";

const POLL_MS = 1000;
let previewFps = 5;
let polling = null;
let down = false;

function $(id) { return document.getElementById(id); }
function text(id, value) { $(id).textContent = value; }
function fixed(value, digits) { return value === null || value === undefined ? "–" : value.toFixed(digits); }

function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
  const m = Math.floor(seconds % 3600 / 60), s = Math.floor(seconds % 60);
  return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${s} s`;
}

function topLabel(result) { return result.labels[0]; }

function showResults(results, zoned) {
  // Without zones, the frame's label; with zones, each zone's (one headline would mislead).
  const [frame] = results.filter(r => r.zone === undefined);
  $("now").hidden = zoned;
  text("label", frame ? topLabel(frame).label : "–");
  text("score", frame ? topLabel(frame).score.toFixed(2) : "");
  const list = $("zones");
  list.replaceChildren();
  for (const result of results.filter(r => r.zone !== undefined)) {
    const item = document.createElement("li");
    item.dataset.zone = result.zone;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = result.zone;
    const label = document.createElement("span");
    label.className = "zone-label";
    label.textContent = topLabel(result).label;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = topLabel(result).score.toFixed(2);
    item.append(name, " ", label, " ", score);
    list.append(item);
  }
}

function showStats(stats, status) {
  text("classified-fps", fixed(stats.rates.classified_fps, 1));
  text("captured-fps", fixed(stats.rates.input_fps, 1));
  text("latency", `${fixed(stats.latency_ms.p50, 0)} / ${fixed(stats.latency_ms.p99, 0)}`);
  const reasons = Object.entries(stats.frames.dropped_by_reason).filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${n}`);
  text("dropped", stats.frames.dropped + (reasons.length ? ` (${reasons.join(", ")})` : ""));
  text("stalls", String(stats.source.stalls));
  text("model", status.model);
  text("uptime", duration(stats.uptime_s));
  const board = stats.board;
  text("temperature", board.temperature_c === null ? "not reported" : `${board.temperature_c.toFixed(1)} °C`);
  const flags = [["throttled", "throttled"], ["freq_capped", "frequency capped"],
    ["under_voltage", "under-voltage"], ["soft_temp_limit", "soft temperature limit"]];
  const known = flags.filter(([key]) => board[key] !== null);
  const on = known.filter(([key]) => board[key]).map(([, words]) => words);
  $("throttling").className = on.length ? "warn" : "";
  text("throttling", !known.length ? "not reported" : on.length ? on.join(", ") : "none");
  text("viewers", `${status.preview.viewers} of ${status.preview.max_viewers}`);
}

function showSnapshots(snapshots) {
  $("snapshots-section").hidden = snapshots.length === 0;
  const list = $("snapshots");
  const wanted = snapshots.map(s => s.url).join(" ");
  if (list.dataset.shown === wanted) return;
  list.dataset.shown = wanted;
  list.replaceChildren();
  for (const snapshot of snapshots) {
    const item = document.createElement("li");
    const figure = document.createElement("figure");
    const link = document.createElement("a");
    link.href = snapshot.url;
    const image = document.createElement("img");
    image.src = snapshot.url;
    image.alt = snapshot.label;
    image.loading = "lazy";
    link.append(image);
    const caption = document.createElement("figcaption");
    caption.textContent = `${snapshot.time} ${snapshot.zone ? snapshot.zone + ": " : ""}${snapshot.label} ${snapshot.score.toFixed(2)}`;
    figure.append(link, caption);
    item.append(figure);
    list.append(item);
  }
}

async function poll() {
  try {
    const response = await fetch("/api/status", {cache: "no-store", credentials: "same-origin"});
    if (response.status === 401) { window.location.href = "/login"; return; }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const status = await response.json();
    previewFps = status.preview.fps;
    showResults(status.results, status.zones.length > 0);
    showStats(status.stats, status);
    showSnapshots(status.snapshots);
    text("version", `edgecam ${status.version}`);
    $("connection").className = "badge ok";
    text("connection", "live");
    if (down && polling === null) $("preview").src = `/preview.mjpeg?t=${Date.now()}`;  // a new stream
    down = false;
  } catch (error) {
    down = true;
    $("connection").className = "badge down";
    text("connection", "no answer");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function pollPreview(why) {
  if (polling !== null) return;
  const note = $("preview-note");
  note.textContent = why;
  note.hidden = false;
  const image = $("preview");
  const next = () => { image.src = `/preview.jpg?t=${Date.now()}`; };
  image.onerror = () => { polling = setTimeout(next, 1000); };
  image.onload = () => { polling = setTimeout(next, 1000 / previewFps); };
  polling = setTimeout(next, 0);
}

document.addEventListener("DOMContentLoaded", () => {
  $("preview").addEventListener("error", () => pollPreview(
    "The live stream is not available (too many viewers, or it broke): refreshing the picture instead."),
    {once: true});
  poll();
});
