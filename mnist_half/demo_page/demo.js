// The demo page: drawing, the requests to the local server (mnist_half/demo_server.py), and
// the heat maps. Every model computation happens on the server, in tinynet; this file only
// draws what it answers. At most one request is in flight: newer wishes wait for it and the
// latest one wins, so the page never piles up work while you draw or the steps play.
"use strict";

const SIZE = 28, HALF = 14;
const GATES = ["i", "f", "g", "o"], STATES = ["c", "h"];
const REQUEST_TIMEOUT_MS = 15000;
const PLAY_MS_PER_ROW = 80;

// Everything the page knows; `window.demoState` lets a test (or a curious reader) look at it.
const state = {
  info: null,
  drawing: new Float32Array(SIZE * SIZE),  // what was drawn: only the upper half is ever non-zero
  original: null,                          // a held-out digit's full image, until it is drawn over
  noise: "sp",
  seed: Math.floor(Math.random() * 2 ** 31),
  input: null,                             // what the network sees (28 x 28 nested list)
  completion: null,                        // the server's completion of `input`
  inspection: null,                        // the last /api/inspect answer
  row: SIZE - 1,                           // the decoder step chosen
  requests: 0,                             // answered requests, for tests to wait on
  playing: false,                          // the steps are being played
};
window.demoState = state;

const $ = (id) => document.getElementById(id);

// --- requests ----------------------------------------------------------------------------

async function api(path, body) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  let response;
  try {
    response = await fetch(path, body === undefined ? { signal: controller.signal } : {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), signal: controller.signal,
    });
  } catch (error) {
    throw new Error(error.name === "AbortError" ? "the server took too long to answer"
                                                : "the server does not answer (was it stopped?)");
  } finally {
    clearTimeout(timer);
  }
  let answer;
  try { answer = await response.json(); } catch (error) { answer = { error: `HTTP ${response.status}` }; }
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

const wishes = { input: false, inspect: false };
let working = false;

// Ask for a new corrupted input (input=true) and/or a new inspection of the chosen row.
function want(input, inspect = true) {
  wishes.input = wishes.input || input;
  wishes.inspect = wishes.inspect || inspect;
  if (!working) work();
}

async function work() {
  working = true;
  document.body.dataset.busy = "1";
  try {
    while (wishes.input || wishes.inspect) {
      if (wishes.input) {
        wishes.input = false;
        const answer = await api("/api/corrupt", { image: nested(state.drawing, state.original),
                                                   noise: state.noise, seed: state.seed });
        state.input = answer.input;
        drawImage($("input"), state.input);
        wishes.inspect = true;
      }
      if (wishes.inspect) {
        wishes.inspect = false;
        const started = performance.now();
        const request = { image: state.input, row: state.row };
        if ($("objective").value === "row_rmse" && state.original) request.target = state.original;
        const answer = await api("/api/inspect", request);
        state.completion = answer.completion;
        state.inspection = answer;
        state.requests += 1;
        drawCompletion();
        drawInspection(answer);
        setStatus(`step ${answer.row}: forward and backward ${answer.compute_ms} ms on the server, ` +
                  `${Math.round(performance.now() - started)} ms round trip`);
        if (state.replayNext && !wishes.input) { state.replayNext = false; play(); }
      }
    }
    document.body.dataset.ready = "1";
  } catch (error) {
    setStatus(`error: ${error.message}`, true);
    wishes.input = wishes.inspect = false;
  } finally {
    working = false;
    delete document.body.dataset.busy;
  }
}

// The drawing as 28 rows of 28 numbers; a held-out digit's lower half goes along (it is blanked anyway).
function nested(drawing, original) {
  const rows = [];
  for (let r = 0; r < SIZE; r++) {
    const row = [];
    for (let c = 0; c < SIZE; c++) row.push(r < HALF || !original ? drawing[r * SIZE + c] : original[r][c]);
    rows.push(row);
  }
  return rows;
}

// --- drawing -----------------------------------------------------------------------------

// A stroke about 3 pixels wide, full inside 0.6 px of the pen and fading to 0 at 1.6 px, like
// MNIST's anti-aliased strokes. Only the upper half takes ink.
function ink(x, y) {
  for (let r = Math.max(0, Math.floor(y - 2)); r <= Math.min(HALF - 1, Math.ceil(y + 2)); r++) {
    for (let c = Math.max(0, Math.floor(x - 2)); c <= Math.min(SIZE - 1, Math.ceil(x + 2)); c++) {
      const d = Math.hypot(c + 0.5 - x, r + 0.5 - y);
      const value = Math.min(1, Math.max(0, 1.6 - d));
      const k = r * SIZE + c;
      if (value > state.drawing[k]) state.drawing[k] = value;
    }
  }
}

function setupDrawing() {
  const canvas = $("draw");
  let last = null;
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) / box.width * SIZE, (event.clientY - box.top) / box.height * SIZE];
  };
  const strokeTo = (point) => {
    const [x0, y0] = last || point, [x1, y1] = point;
    const steps = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) / 0.25));
    for (let s = 1; s <= steps; s++) ink(x0 + (x1 - x0) * s / steps, y0 + (y1 - y0) * s / steps);
    last = point;
    drawImage(canvas, state.drawing);
  };
  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    if (state.original) forgetOriginal();
    stopPlaying();
    last = null;
    strokeTo(at(event));
    want(true);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!canvas.hasPointerCapture(event.pointerId)) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const each of events.length ? events : [event]) strokeTo(at(each));
    want(true);  // live: the redraw follows the pen, one request at a time
  });
  const end = (event) => {
    if (!canvas.hasPointerCapture(event.pointerId)) return;
    canvas.releasePointerCapture(event.pointerId);
    last = null;
    state.replayNext = $("replay").checked;
    setRow(SIZE - 1, false);
    want(true);
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
}

function forgetOriginal() {
  // Drawn over, the digit is no longer the original: keep what is on screen, drop the target.
  state.original = null;
  $("original-box").hidden = true;
  $("objective").value = "row_sum";
  $("objective").options[1].disabled = true;
  $("digit-line").textContent = "Your drawing (the original is unknown once you draw).";
}

async function pickHeldOut() {
  stopPlaying();
  const index = Math.floor(Math.random() * state.info.held_out.count);
  try {
    const digit = await api(`/api/digit?index=${index}`);
    state.original = digit.image;
    state.drawing = new Float32Array(SIZE * SIZE);
    for (let r = 0; r < HALF; r++) for (let c = 0; c < SIZE; c++) state.drawing[r * SIZE + c] = digit.image[r][c];
    drawImage($("draw"), state.drawing);
    drawImage($("original"), digit.image);
    $("original-box").hidden = false;
    $("objective").options[1].disabled = false;
    const seen = state.info.held_out.seen_in_training ? " (from MNIST's training set: this model may have seen it)" : "";
    $("digit-line").textContent = `Held-out digit #${index}, a ${digit.label}${seen}.`;
    state.replayNext = true;
    setRow(SIZE - 1, false);
    want(true);
  } catch (error) {
    setStatus(`error: ${error.message}`, true);
  }
}

// --- the steps ---------------------------------------------------------------------------

let playTimer = null;

function setRow(row, inspect = true) {
  state.row = row;
  $("row").value = row;
  $("row-label").textContent = `row ${row}`;
  for (const span of document.querySelectorAll(".t")) span.textContent = row;
  for (const id of ["input-marker", "output-marker", "grad-marker"]) $(id).style.top = `calc(${row} * var(--cell))`;
  drawCompletion();
  if (inspect) want(false, true);
}

function play() {
  stopPlaying();
  let row = 0;
  state.playing = true;
  setRow(0);
  $("play").textContent = "\u275A\u275A Pause";
  playTimer = setInterval(() => {
    row += 1;
    if (row >= SIZE) { stopPlaying(); return; }
    setRow(row);
  }, PLAY_MS_PER_ROW);
}

function stopPlaying() {
  if (playTimer !== null) clearInterval(playTimer);
  playTimer = null;
  state.playing = false;
  $("play").textContent = "\u25B6 Play";
}

// --- pictures ----------------------------------------------------------------------------

function value2d(values, r, c, cols) {
  return Array.isArray(values[0]) ? values[r][c] : values[r * cols + c];
}

// Grey levels, white digit on black as in MNIST; the first `rows` rows drawn, the rest left black.
function drawImage(canvas, values, rows = SIZE) {
  const context = canvas.getContext("2d");
  const image = context.createImageData(SIZE, SIZE);
  for (let r = 0; r < SIZE; r++) {
    for (let c = 0; c < SIZE; c++) {
      const grey = r < rows ? Math.round(255 * Math.min(1, Math.max(0, value2d(values, r, c, SIZE)))) : 0;
      const k = 4 * (r * SIZE + c);
      image.data[k] = image.data[k + 1] = image.data[k + 2] = grey;
      image.data[k + 3] = 255;
    }
  }
  context.putImageData(image, 0, 0);
}

function drawCompletion() {
  // the decoder has drawn rows 0..t by the end of step t
  if (state.completion) drawImage($("output"), state.completion, state.row + 1);
}

// Colour maps: `unit` for values in [0, 1] (dark blue to yellow), `signed` for values around 0
// (blue < 0 < red, white at 0), each value divided by `scale` first.
const UNIT_STOPS = [[13, 8, 135], [126, 3, 168], [204, 71, 120], [248, 149, 64], [240, 249, 33]];
function unitColour(t) {
  t = Math.min(1, Math.max(0, t)) * (UNIT_STOPS.length - 1);
  const k = Math.min(UNIT_STOPS.length - 2, Math.floor(t)), w = t - k;
  return UNIT_STOPS[k].map((a, j) => Math.round(a + (UNIT_STOPS[k + 1][j] - a) * w));
}
function signedColour(t) {
  t = Math.min(1, Math.max(-1, t));
  const far = t < 0 ? [59, 76, 192] : [180, 4, 38], w = Math.abs(t);
  return [255, 255, 255].map((a, j) => Math.round(a + (far[j] - a) * w));
}

function heatmap(canvas, values, rows, cols, kind, scale = 1) {
  const context = canvas.getContext("2d");
  const image = context.createImageData(cols, rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const x = value2d(values, r, c, cols) / scale;
      const [red, green, blue] = kind === "unit" ? unitColour(x) : signedColour(x);
      const k = 4 * (r * cols + c);
      image.data.set([red, green, blue, 255], k);
    }
  }
  context.putImageData(image, 0, 0);
}

function maxAbs(values) {
  return values.flat().reduce((m, x) => Math.max(m, Math.abs(x)), 0);
}

function drawInspection(answer) {
  const lstm = answer.layers !== null;
  $("lstm-view").hidden = !lstm;
  $("cnn-note").hidden = lstm;
  $("grad-v-figure").hidden = !lstm;
  heatmap($("y-row"), answer.completion[answer.row], 1, SIZE, "unit");
  if (lstm) {
    heatmap($("v"), answer.v, 10, 10, "signed");
    $("v-range").textContent = "in [\u22121, 1]";
    answer.layers.forEach((layer, l) => {
      for (const name of [...GATES, ...STATES]) {
        const scale = name === "c" ? Math.max(1e-6, maxAbs(layer.c)) : 1;
        const kind = name === "g" || name === "h" || name === "c" ? "signed" : "unit";
        heatmap($(`cell-${l}-${name}`), layer[name], 8, 16, kind, scale);
        if (name === "c") $(`range-${l}-c`).textContent = `|c| \u2264 ${scale.toPrecision(3)}`;
      }
    });
    const scaleV = Math.max(1e-12, maxAbs(answer.grad_v));
    heatmap($("grad-v"), answer.grad_v, 10, 10, "signed", scaleV);
    $("grad-v-range").textContent = `max |\u2202/\u2202v| = ${scaleV.toPrecision(3)}`;
  }
  const scale = Math.max(1e-12, maxAbs(answer.grad_image));
  heatmap($("grad-image"), answer.grad_image, SIZE, SIZE, "signed", scale);
  $("grad-image-range").textContent = `max |\u2202/\u2202x| = ${scale.toPrecision(3)}`;
  const what = answer.objective === "row_rmse" ? "row's RMSE" : "sum of the row";
  $("objective-value").textContent = `${what} = ${answer.objective_value.toPrecision(4)}`;
}

// --- building the page -------------------------------------------------------------------

function linkEquations() {
  for (const link of document.querySelectorAll("a[data-eq]")) {
    const equation = state.info.equations[link.dataset.eq];
    link.href = equation.href;
    link.target = "_blank";
    link.title = `docs/equations.md: ${equation.number ? `eq. (${equation.number})` : link.textContent}`;
  }
}

function buildLayerTable() {
  const head = document.querySelector("#layers thead tr"), body = document.querySelector("#layers tbody");
  for (const name of [...GATES, ...STATES]) {
    const th = document.createElement("th");
    const link = document.createElement("a");
    link.dataset.eq = name;
    const label = { i: "i, input gate", f: "f, forget gate", g: "g = C\u0303, new state", o: "o, output gate",
                    c: "c, cell state", h: "h, hidden state" }[name];
    link.textContent = `${label} (${state.info.equations[name].number})`;
    th.append(link);
    head.append(th);
  }
  const layers = state.info.layers || 0;
  for (let l = 0; l < layers; l++) {
    const tr = document.createElement("tr");
    const label = document.createElement("td");
    label.className = "layer";
    label.innerHTML = l === 0 ? "layer 1<br>reads x<sub>t</sub>, v, y<sub>t\u22121</sub>" :
      (l === layers - 1 ? `layer ${l + 1}<br>feeds y<sub>t</sub>` : `layer ${l + 1}`);
    tr.append(label);
    for (const name of [...GATES, ...STATES]) {
      const td = document.createElement("td");
      const canvas = document.createElement("canvas");
      canvas.width = 16; canvas.height = 8; canvas.id = `cell-${l}-${name}`;
      td.append(canvas);
      if (name === "c") {
        const range = document.createElement("span");
        range.className = "range"; range.id = `range-${l}-c`;
        td.append(range);
      }
      tr.append(td);
    }
    body.append(tr);
  }
  if (state.info.literal_eq13) {
    $("layers").insertAdjacentHTML("afterend", "<p class='note'>This run uses eq. (13) as printed: " +
                                   "h = i \u00b7 tanh(c), so the output gate o is unused.</p>");
  }
}

function buildNoiseChoice() {
  const box = $("noise");
  for (const [key, noise] of Object.entries(state.info.noise)) {
    const label = document.createElement("label");
    const radio = document.createElement("input");
    radio.type = "radio"; radio.name = "noise"; radio.value = key; radio.checked = key === state.noise;
    radio.addEventListener("change", () => { state.noise = key; want(true); });
    const amount = key === "sp" ? ` ${Math.round(noise.amount * 100)} %` : key === "gauss" ? ` \u03c3 ${noise.amount}` : "";
    label.append(radio, ` ${noise.name}${amount}`);
    box.append(label);
  }
}

async function start() {
  try {
    state.info = await api("/api/info");
  } catch (error) {
    setStatus(`error: ${error.message}`, true);
    return;
  }
  const info = state.info;
  const members = info.members > 1 ? `, the mean of ${info.members} networks (internals of the first)` : "";
  $("model-line").textContent = `${info.label}${info.layers ? `, ${info.layers} LSTM layers of ${info.hidden}` : ""}` +
    `${members}; ${info.checkpoint}, ${info.trained_for}. Everything runs in tinynet on this machine.`;
  if (info.model !== "cnn-lstm") {
    $("output-note").textContent = "The CNN-CNN draws all 28 rows at once; the slider picks the row whose gradient is shown.";
  }
  buildNoiseChoice();
  buildLayerTable();
  linkEquations();
  drawImage($("draw"), state.drawing);
  setupDrawing();
  $("clear").addEventListener("click", () => {
    stopPlaying();
    state.drawing = new Float32Array(SIZE * SIZE);
    if (state.original) forgetOriginal();
    $("digit-line").textContent = "Draw with the mouse or a finger in the upper half.";
    drawImage($("draw"), state.drawing);
    want(true);
  });
  $("held-out").addEventListener("click", pickHeldOut);
  $("new-noise").addEventListener("click", () => { state.seed = Math.floor(Math.random() * 2 ** 31); want(true); });
  $("row").addEventListener("input", () => {
    stopPlaying();
    setRow(Number($("row").value));
  });
  $("play").addEventListener("click", () => (playTimer === null ? play() : stopPlaying()));
  $("objective").addEventListener("change", () => want(false, true));
  setRow(SIZE - 1, false);
  want(true);
}

start();
