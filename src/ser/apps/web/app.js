// The page of `ser serve`: upload a file (POST /api/predict) or record from the microphone
// (16-bit PCM over WS /api/live); draw each model family's timeline and whole-recording answer.
"use strict";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f"];
const $ = (id) => document.getElementById(id);
let info = null;       // GET /api/info: the families, hop, window
let live = null;       // the recording in progress
const state = window.serState = {segments: [], final: null, recordedWav: null};

async function loadInfo() {
  const r = await fetch("/api/info");
  info = await r.json();
  $("models").textContent = Object.values(info.models)
    .map((m) => `${m.label}: ${m.describe}`).join(" · ");
}

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

// ------------------------------------------------------------------ drawing

function timeline(name, segments, classes) {
  const w = 600, h = 160, pad = 4;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.classList.add("timeline");
  const t1 = Math.max(...segments.map((s) => s.end_s), 1);
  const x = (t) => pad + (w - 2 * pad) * t / t1;
  const y = (p) => h - pad - (h - 2 * pad) * p;
  for (const s of segments) {
    if (s.short || s.silent) {
      const r = document.createElementNS(svgNS, "rect");
      r.setAttribute("x", x(s.start_s)); r.setAttribute("width", x(s.end_s) - x(s.start_s));
      r.setAttribute("y", 0); r.setAttribute("height", h); r.setAttribute("fill", "#e8e8e8");
      svg.appendChild(r);
    }
  }
  classes.forEach((c, k) => {
    const pts = segments.filter((s) => s[name])
      .map((s) => `${x((s.start_s + s.end_s) / 2).toFixed(1)},${y(s[name].probs[c]).toFixed(1)}`);
    if (!pts.length) return;
    const line = document.createElementNS(svgNS, "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", COLORS[k % COLORS.length]);
    line.setAttribute("stroke-width", "2");
    line.dataset.cls = c;
    svg.appendChild(line);
  });
  return svg;
}

function render(title, doc, segments, done) {
  // doc: the API's object (models, files[0]) or, while recording, null
  $("result").hidden = false;
  $("title").textContent = title;
  const fam = $("families");
  fam.replaceChildren();
  const warnings = $("warnings");
  warnings.replaceChildren();
  const file = doc ? doc.files[0] : null;
  for (const w of (file ? file.warnings : [])) {
    const li = document.createElement("li"); li.textContent = w; warnings.appendChild(li);
  }
  for (const [name, m] of Object.entries(info.models)) {
    const div = document.createElement("div");
    div.className = "family"; div.dataset.family = name;
    const h = document.createElement("h3"); h.textContent = m.label; div.appendChild(h);
    const whole = document.createElement("p"); whole.className = "whole";
    if (file) {
      const e = file.whole[name];
      whole.innerHTML = `whole recording: <strong class="top"></strong> <span class="prob"></span>`;
      whole.querySelector(".top").textContent = e.top;
      whole.querySelector(".prob").textContent = e.prob.toFixed(2);
    } else {
      whole.textContent = done ? "" : "recording… the whole-recording answer comes at Stop";
    }
    div.appendChild(whole);
    div.appendChild(timeline(name, segments, m.classes));
    const legend = document.createElement("div"); legend.className = "legend";
    m.classes.forEach((c, k) => {
      const s = document.createElement("span"); s.textContent = c;
      s.style.setProperty("--c", COLORS[k % COLORS.length]); legend.appendChild(s);
    });
    div.appendChild(legend);
    const table = document.createElement("table"); table.className = "segments";
    table.innerHTML = "<tr><th>segment (s)</th><th>answer</th><th></th></tr>";
    for (const s of segments) {
      const tr = document.createElement("tr"); tr.className = "segment";
      const e = s[name];
      const cells = [`${s.start_s.toFixed(1)}–${s.end_s.toFixed(1)}`,
                     e ? `${e.top} ${e.prob.toFixed(2)}` : "—",
                     (s.short ? "short " : "") + (s.silent ? "silent" : "")];
      for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
      table.appendChild(tr);
    }
    div.appendChild(table);
    fam.appendChild(div);
  }
}

// ------------------------------------------------------------------ upload

async function upload(fileObj) {
  status(`analysing ${fileObj.name}…`);
  $("player").src = URL.createObjectURL(fileObj);
  const form = new FormData();
  form.append("file", fileObj, fileObj.name);
  const t0 = performance.now();
  const r = await fetch("/api/predict", {method: "POST", body: form});
  const doc = await r.json();
  if (!r.ok) { status(doc.error || `error ${r.status}`, true); return; }
  state.final = doc; state.segments = doc.files[0].segments;
  render(fileObj.name, doc, doc.files[0].segments, true);
  state.shownMs = performance.now() - t0;
  status(`${fileObj.name}: ${doc.files[0].duration_s.toFixed(1)} s, answered in ${Math.round(state.shownMs)} ms`);
}

$("file").addEventListener("change", (e) => { if (e.target.files[0]) upload(e.target.files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
});

// ------------------------------------------------------------------ microphone

function wavBlob(chunks, rate) {
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const buf = new ArrayBuffer(44 + 2 * n);
  const v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, "RIFF"); v.setUint32(4, 36 + 2 * n, true); str(8, "WAVE"); str(12, "fmt ");
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, 2 * rate, true); v.setUint16(32, 2, true);
  v.setUint16(34, 16, true); str(36, "data"); v.setUint32(40, 2 * n, true);
  let o = 44;
  for (const c of chunks) for (let i = 0; i < c.length; i++, o += 2) v.setInt16(o, c[i], true);
  return new Blob([buf], {type: "audio/wav"});
}

async function record() {
  const stream = await navigator.mediaDevices.getUserMedia({audio: {echoCancellation: false,
    noiseSuppression: false, autoGainControl: false, channelCount: 1}});
  const ctx = new AudioContext();
  const source = ctx.createMediaStreamSource(stream);
  const proc = ctx.createScriptProcessor(4096, 1, 1);
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/live`);
  ws.binaryType = "arraybuffer";
  live = {stream, ctx, source, proc, ws, chunks: [], pending: [], start: performance.now(),
          rate: ctx.sampleRate};
  state.segments = []; state.final = null; state.recordedWav = null; state.segmentTimes = [];
  ws.onopen = () => {  // the rate first, then what was captured while connecting
    ws.send(JSON.stringify({sample_rate: ctx.sampleRate}));
    for (const p of live.pending) ws.send(p.buffer);
    live.pending = [];
  };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.segment) {
      state.segments.push(msg.segment);
      state.segmentTimes.push(performance.now() - live.start);
      render("recording…", null, state.segments, false);
    } else if (msg.final) {
      state.final = msg.final;
      render("recording", msg.final, msg.final.files[0].segments, true);
      status(`recording: ${msg.final.files[0].duration_s.toFixed(1)} s`);
    } else if (msg.error) {
      status(msg.error, true);
    }
  };
  proc.onaudioprocess = (e) => {
    const x = e.inputBuffer.getChannelData(0);
    const pcm = new Int16Array(x.length);
    for (let i = 0; i < x.length; i++) pcm[i] = Math.max(-32768, Math.min(32767, Math.round(x[i] * 32768)));
    live.chunks.push(pcm);  // the recording the player plays: exactly what the server gets
    if (ws.readyState === WebSocket.OPEN) ws.send(pcm.buffer); else live.pending.push(pcm);
    $("clock").textContent = `${((performance.now() - live.start) / 1000).toFixed(1)} s`;
  };
  source.connect(proc); proc.connect(ctx.destination);
  $("record").disabled = true; $("record").classList.add("on"); $("stop").disabled = false;
  status("recording: the timeline grows every few seconds");
  render("recording…", null, [], false);
}

function stop() {
  if (!live) return;
  live.proc.disconnect(); live.source.disconnect();
  live.stream.getTracks().forEach((t) => t.stop());
  live.ctx.close();
  const blob = wavBlob(live.chunks, live.rate);
  state.recordedWav = blob;
  $("player").src = URL.createObjectURL(blob);
  if (live.ws.readyState === WebSocket.OPEN) live.ws.send("stop");
  status("analysing the whole recording…");
  $("record").disabled = false; $("record").classList.remove("on"); $("stop").disabled = true;
  live = null;
}

$("record").addEventListener("click", () => record().catch((e) => status(`microphone: ${e.message}`, true)));
$("stop").addEventListener("click", stop);
loadInfo().catch((e) => status(`cannot reach the server: ${e.message}`, true));
