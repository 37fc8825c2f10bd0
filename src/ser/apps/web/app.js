// The page of `ser serve`: upload a file (POST /api/predict) or record from the microphone
// (16-bit PCM over WS /api/live). The answer first (each family's whole-recording emotion and
// whether they agree), then one emotion strip per family on the recording's time axis, linked
// to the player; the details (every segment, the models) behind a toggle. Upload and recording
// exclude each other; every error ends the busy state, clears the old answer and says what to do.
"use strict";

const $ = (id) => document.getElementById(id);
const svgNS = "http://www.w3.org/2000/svg";
let info = null;       // GET /api/info: the families, hop, window
let live = null;       // the recording in progress
let stopAsked = false; // Stop pressed while the microphone was still starting
let busy = null;       // "upload" | "record" | "analyse" | null
let shown = null;      // what the result section shows: {title, doc, segments, duration}
const state = window.serState = {segments: [], final: null, recordedWav: null, shownMs: null,
                                 segmentTimes: []};

function el(tag, attrs = {}, text = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== null) e.textContent = text;
  return e;
}

function svgEl(tag, attrs = {}) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

const pct = (p) => `${Math.round(100 * p)}%`;
const colorOf = (c) => (info.colors || {})[c] || "#666666";  // one colour per emotion (registry)

function status(text, kind = "") {
  $("status").textContent = text;
  $("status").className = kind;
}

async function loadInfo() {
  const r = await fetch("/api/info");
  if (!r.ok) throw new Error(`the server answered ${r.status}`);
  info = await r.json();
  $("models").textContent = "Listening with: " + Object.values(info.models).map((m) => m.plain).join(", ");
  $("drop-help").textContent = `WAV, FLAC, OGG or MP3, up to ${Math.round(info.max_seconds / 60)} minutes`;
}

// ------------------------------------------------------------------ busy state, errors

function setBusy(kind) {
  busy = kind;  // the file input stays enabled (focus stays where it is): upload() refuses while busy
  $("record").disabled = kind !== null;
  $("stop").disabled = kind !== "record";
  $("record").setAttribute("aria-pressed", kind === "record" ? "true" : "false");
  $("record").classList.toggle("on", kind === "record");
  $("record").textContent = kind === "record" ? "● Recording" : "Record from the microphone";
  $("level").hidden = kind !== "record";
  document.body.classList.toggle("busy", kind !== null);
}

function clearResult() {
  shown = null;
  $("result").hidden = true;
  $("player").removeAttribute("src");
  $("player").load();
  $("clock").textContent = "";
}

function fail(message) {
  // every error: the busy state ends, the old answer goes, the message says what to do
  if (live) stopCapture().ws.close();  // the server's session ends too, not at its idle timeout
  setBusy(null);
  clearResult();
  status(message, "error");
}

async function readAnswer(r) {
  // the server's JSON, or a plain-words error for anything else
  let doc = null;
  try { doc = await r.json(); } catch (e) { doc = null; }
  if (r.ok && doc && doc.files) return doc;
  if (doc && doc.error) throw new Error(doc.error);
  throw new Error(`the server answered ${r.status} without an explanation: try again, or restart ` +
                  "`ser serve` and look at its log");
}

// ------------------------------------------------------------------ the answer first

function describeAgreement(file) {
  const names = Object.keys(info.models);
  const tops = names.map((n) => file.whole[n] && file.whole[n].top);
  const counts = {};
  tops.forEach((t) => { if (t) counts[t] = (counts[t] || 0) + 1; });
  const ranked = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  if (!ranked.length) return "No model gave an answer.";
  if (ranked.length === 1) {
    const all = {1: "The model hears", 2: "Both models hear"}[names.length] || `All ${names.length} models hear`;
    return `${all} ${ranked[0][0]}.`;
  }
  const [top, n] = ranked[0];
  if (n > 1 && n > ranked[1][1]) {
    const others = names.filter((m, i) => tops[i] !== top)
      .map((m) => `${info.models[m].plain} hears ${file.whole[m].top}`);
    return `${n} of ${names.length} models hear ${top}; ${others.join(", ")}.`;
  }
  return "The models disagree: " + names.map((m) => `${info.models[m].plain} hears ${file.whole[m].top}`)
    .join(", ") + ".";
}

function renderAnswers(file) {
  const box = $("answers");
  box.replaceChildren();
  $("verdict").textContent = file ? describeAgreement(file) :
    "Listening… the answer for the whole recording comes when you stop.";
  const why = [];
  for (const [name, m] of Object.entries(info.models)) {
    const card = el("div", {class: "family", "data-family": name});
    card.appendChild(el("h3", {title: m.hint}, m.plain));
    card.appendChild(el("p", {class: "hint"}, m.hint));
    const whole = el("p", {class: "whole"});
    const e = file && file.whole[name];
    if (e) {
      const sw = el("span", {class: "swatch", "aria-hidden": "true"});
      sw.style.background = colorOf(e.top);
      whole.append(sw, el("strong", {class: "top"}, e.top), " ",
                   el("span", {class: "prob"}, `${pct(e.prob)} sure`));
      const tops = file.segments.filter((s) => s[name]).map((s) => s[name].top);
      if (tops.length > 1 && !tops.includes(e.top)) {
        why.push(`${m.plain} hears ${e.top} in the whole recording but not in any segment: ` +
                 (name === "cnn_lstm" ? "its whole answer is the mean of its segments' probabilities, " +
                  "so an emotion that comes second everywhere can win overall."
                  : "it reads the whole recording's measures at once, not its segments one by one."));
      }
    } else {
      whole.textContent = file ? "no answer (silent)" : "…";
    }
    card.appendChild(whole);
    box.appendChild(card);
  }
  $("why").hidden = !why.length;
  $("why").textContent = why.join(" ");
}

// ------------------------------------------------------------------ the timelines

function niceStep(duration) {
  for (const s of [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300]) if (duration / s <= 8) return s;
  return 600;
}

function strip(name, m, segments, duration) {
  // the SVG stretches to the page's width (segments, ticks, cursor); the time labels are HTML
  const w = 1000, h = 50;
  const x = (t) => w * t / duration;
  const svg = svgEl("svg", {viewBox: `0 0 ${w} ${h + 6}`, preserveAspectRatio: "none", class: "timeline",
                            role: "group", "aria-label": `${m.plain}: the emotion heard in each ` +
                            `segment, on the recording's time axis (${duration.toFixed(1)} s)`});
  svg.appendChild(svgEl("rect", {x: 0, y: 0, width: w, height: h, class: "track"}));
  segments.forEach((s, i) => {
    const e = s[name];
    const g = svgEl("g", {class: "seg", tabindex: "0", role: "button", "data-start": s.start_s,
                          "data-index": i});
    const label = `${s.start_s.toFixed(1)} to ${s.end_s.toFixed(1)} s: ` +
      (e ? `${e.top}, ${pct(e.prob)}` : "silent") + (s.short ? " (short: unreliable)" : "");
    g.setAttribute("aria-label", label + ". Press to play it.");
    const r = svgEl("rect", {x: x(s.start_s), y: 1, width: Math.max(1, x(s.end_s) - x(s.start_s)),
                             height: h - 2, "vector-effect": "non-scaling-stroke"});
    if (e) {
      r.setAttribute("fill", colorOf(e.top));
      r.setAttribute("fill-opacity", (0.35 + 0.65 * e.prob).toFixed(2));
    } else {
      r.setAttribute("class", "silent");
    }
    if (s.short) r.setAttribute("stroke-dasharray", "4 3");
    const tip = svgEl("title");
    tip.textContent = label + (e ? "\n" + Object.entries(e.probs).sort((a, b) => b[1] - a[1])
      .map(([c, p]) => `${c} ${pct(p)}`).join(", ") : "");
    g.append(r, tip);
    const play = () => playFrom(s.start_s);
    g.addEventListener("click", play);
    g.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); play(); }
    });
    svg.appendChild(g);
  });
  const axis = el("div", {class: "axis", "aria-hidden": "true"});
  const step = niceStep(duration);
  for (let t = 0; t <= duration + 1e-9; t += step) {
    svg.appendChild(svgEl("line", {x1: x(t), x2: x(t), y1: h, y2: h + 6, class: "tick",
                                   "vector-effect": "non-scaling-stroke"}));
    const lab = el("span", {class: "tick-label"}, `${+t.toFixed(1)} s`);
    lab.style.left = `${100 * t / duration}%`;
    axis.appendChild(lab);
  }
  svg.appendChild(svgEl("line", {x1: 0, x2: 0, y1: 0, y2: h, class: "cursor", "data-w": w,
                                 "data-duration": duration, "vector-effect": "non-scaling-stroke"}));
  const box = el("div", {class: "strip-box"});
  box.append(svg, axis);
  return box;
}

function renderTimelines(segments, duration) {
  const box = $("timelines");
  box.replaceChildren();
  for (const [name, m] of Object.entries(info.models)) {
    const fig = el("figure", {class: "strip", "data-family": name});
    fig.appendChild(el("figcaption", {}, m.plain));
    fig.appendChild(strip(name, m, segments, Math.max(duration, 0.1)));
    box.appendChild(fig);
  }
  const legend = $("legend");
  legend.replaceChildren();
  const classes = [...new Set(Object.values(info.models).flatMap((m) => m.classes))];
  for (const c of classes) {
    const s = el("span", {}, c);
    s.style.setProperty("--c", colorOf(c));
    legend.appendChild(s);
  }
  const overlap = segments.length > 1 && segments[1].start_s < segments[0].end_s;
  $("overlap").hidden = !overlap;
  if (overlap) {
    const o = segments[0].end_s - segments[1].start_s;
    $("overlap").textContent = `Segments overlap by ${o.toFixed(2)} s: each is one ` +
      `${info.window_s.toFixed(2)} s window of the neural network, one every ${info.hop_s} s. ` +
      `The first ${info.offset_s} s are skipped, as in training. Darker: surer; dashed: too short to trust.`;
  }
}

function moveCursor() {
  const t = $("player").currentTime;
  for (const c of document.querySelectorAll("#timelines .cursor")) {
    const w = +c.dataset.w, d = +c.dataset.duration;
    const xpos = w * Math.min(t, d) / d;
    c.setAttribute("x1", xpos); c.setAttribute("x2", xpos);
  }
}

function playFrom(t) {
  const p = $("player");
  if (!p.src) return;
  p.currentTime = t;
  p.play().catch(() => {});
  moveCursor();
}

// ------------------------------------------------------------------ details, downloads

function renderDetails(file, segments) {
  const body = $("details-body");
  body.replaceChildren();
  for (const [name, m] of Object.entries(info.models)) {
    const div = el("div", {class: "details-family", "data-family": name});
    div.appendChild(el("h3", {}, `${m.plain}: ${m.label}`));
    div.appendChild(el("p", {class: "help"}, `${m.describe}; trained on RAVDESS, ${m.classes.length} ` +
                       `emotions (${m.classes.join(", ")}).`));
    const table = el("table", {class: "segments"});
    table.appendChild(el("caption", {}, `${m.plain}: every segment`));
    const head = el("tr");
    for (const t of ["segment (s)", "answer", "sure", "note"]) head.appendChild(el("th", {scope: "col"}, t));
    table.appendChild(head);
    for (const s of segments) {
      const e = s[name];
      const tr = el("tr", {class: "segment"});
      for (const c of [`${s.start_s.toFixed(1)}–${s.end_s.toFixed(1)}`, e ? e.top : "—",
                       e ? pct(e.prob) : "—",
                       (s.short ? "short " : "") + (s.silent ? "silent" : "")]) tr.appendChild(el("td", {}, c));
      table.appendChild(tr);
    }
    div.appendChild(table);
    body.appendChild(div);
  }
}

function csvOf(doc) {
  const rows = [];
  const q = (v) => /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v);
  for (const f of doc.files) {
    for (const [name, m] of Object.entries(doc.models)) {
      const parts = [["whole", 0, f.duration_s, false, false, f.whole[name]]]
        .concat(f.segments.map((s, i) => [i, s.start_s, s.end_s, s.short, s.silent, s[name]]));
      for (const [seg, a, b, short, silent, e] of parts) {
        rows.push([f.file, name, seg, a, b, short, silent, e ? e.top : "", e ? e.prob : "",
                   ...m.classes.map((c) => e ? e.probs[c] : "")].map(q).join(","));
      }
    }
  }
  const classes = [...new Set(Object.values(doc.models).flatMap((m) => m.classes))];
  const header = ["file", "model", "segment", "start_s", "end_s", "short", "silent", "top", "prob",
                  ...classes.map((c) => `prob_${c}`)].join(",");
  return header + "\n" + rows.join("\n") + "\n";
}

function setDownloads(doc, title) {
  $("downloads").hidden = !doc;
  if (!doc) return;
  const base = title.replace(/\.[^.]*$/, "") || "answers";
  for (const [id, text, type, ext] of [["dl-json", JSON.stringify(doc, null, 2), "application/json", "json"],
                                        ["dl-csv", csvOf(doc), "text/csv", "csv"]]) {
    const a = $(id);
    if (a.href.startsWith("blob:")) URL.revokeObjectURL(a.href);
    a.href = URL.createObjectURL(new Blob([text], {type}));
    a.download = `${base}.${ext}`;
  }
}

function render(title, doc, segments, duration) {
  shown = {title, doc, segments, duration};
  const file = doc ? doc.files[0] : null;
  $("result").hidden = false;
  $("title").textContent = file ? `${title} · ${file.duration_s.toFixed(1)} s` : title;
  renderAnswers(file);
  renderTimelines(segments, duration);
  const warnings = $("warnings");
  warnings.replaceChildren();
  for (const w of (file ? file.warnings : [])) warnings.appendChild(el("li", {}, w.replace(/ \([^()]*\)$/, "")));
  renderDetails(file, segments);
  setDownloads(doc, title);
}

// ------------------------------------------------------------------ upload

async function upload(fileObj) {
  if (busy) {
    status("Wait for the current answer, or stop the recording, then choose the file again.");
    $("file").value = "";
    return;
  }
  if (!info) { status("The server's models are not loaded yet: reload the page in a moment.", "error"); return; }
  setBusy("upload");
  clearResult();
  status(`Analysing ${fileObj.name}…`);
  const form = new FormData();
  form.append("file", fileObj, fileObj.name);
  const t0 = performance.now();
  let doc;
  try {
    const r = await fetch("/api/predict", {method: "POST", body: form});
    doc = await readAnswer(r);
  } catch (e) {
    const msg = e instanceof TypeError ? "The server cannot be reached: is `ser serve` still " +
      "running? Start it again, then choose the file again." : e.message;
    fail(`${fileObj.name}: not analysed. ${msg.startsWith(fileObj.name + ": ") ? msg.slice(fileObj.name.length + 2) : msg}`);
    return;
  } finally {
    $("file").value = "";  // the same file chosen again is a new choice
  }
  $("player").src = URL.createObjectURL(fileObj);
  state.final = doc; state.segments = doc.files[0].segments;
  render(fileObj.name, doc, doc.files[0].segments, doc.files[0].duration_s);
  state.shownMs = performance.now() - t0;
  setBusy(null);
  status(`${fileObj.name}: answered in ${(state.shownMs / 1000).toFixed(1)} s.`);
  $("title").focus();
}

$("file").addEventListener("change", (e) => { if (e.target.files[0]) upload(e.target.files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); if (!busy) drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (busy) { status("Wait for the current answer, or stop the recording, then drop the file again."); return; }
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

const MIC_ERRORS = {
  NotAllowedError: "The browser may not use the microphone: allow it for this page (the icon in " +
    "the address bar), then press Record again.",
  NotFoundError: "No microphone was found: connect one and press Record again, or upload a recording.",
  NotReadableError: "The microphone is busy or failed: close other programs that use it, then " +
    "press Record again.",
  SecurityError: "The browser allows the microphone only on this machine's own address " +
    "(http://127.0.0.1 or localhost): open the page there.",
};

function release(stream, ctx) {  // the microphone and the audio graph, given back
  stream.getTracks().forEach((t) => t.stop());
  ctx.close().catch(() => {});
}

async function record() {
  if (busy) return;
  if (!info) { status("The server's models are not loaded yet: reload the page in a moment.", "error"); return; }
  setBusy("record");
  stopAsked = false;
  clearResult();
  state.segments = []; state.final = null; state.recordedWav = null; state.segmentTimes = [];
  let stream;
  try {
    if (!navigator.mediaDevices) throw Object.assign(new Error("no mediaDevices"), {name: "SecurityError"});
    stream = await navigator.mediaDevices.getUserMedia({audio: {echoCancellation: false,
      noiseSuppression: false, autoGainControl: false, channelCount: 1}});
  } catch (e) {
    fail(MIC_ERRORS[e.name] || `The microphone could not start (${e.name}): press Record again, or upload a recording.`);
    return;
  }
  const ctx = new AudioContext();
  try {  // the capture runs in an AudioWorklet (capture.js), off this thread
    await ctx.audioWorklet.addModule("/capture.js");
  } catch (e) {
    release(stream, ctx);
    fail(`This browser could not start recording (${e.name}): upload a recording instead.`);
    return;
  }
  if (stopAsked) {
    release(stream, ctx);
    fail("No audio arrived from the microphone: Stop came before it started. Record again.");
    $("record").focus();
    return;
  }
  const source = ctx.createMediaStreamSource(stream);
  const proc = new AudioWorkletNode(ctx, "ser-capture", {numberOfInputs: 1, numberOfOutputs: 1,
                                                         outputChannelCount: [1]});
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/live`);
  ws.binaryType = "arraybuffer";
  const session = {stream, ctx, source, proc, ws, chunks: [], pending: [], start: performance.now(),
                   rate: ctx.sampleRate, stopped: false, lastClock: -1};
  live = session;
  ws.onopen = () => {  // the rate first, then what was captured while connecting
    ws.send(JSON.stringify({sample_rate: ctx.sampleRate}));
    for (const p of session.pending) ws.send(p.buffer);
    session.pending = [];
  };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (msg.segment) {
      state.segments.push(msg.segment);
      state.segmentTimes.push(performance.now() - session.start);
      if (!session.stopped) {
        render("Recording", null, state.segments, samplesOf(session) / session.rate);
      }
    } else if (msg.final) {
      state.final = msg.final;
      render("Your recording", msg.final, msg.final.files[0].segments, msg.final.files[0].duration_s);
      setBusy(null);
      status(`Your recording: ${msg.final.files[0].duration_s.toFixed(1)} s, answered.`);
    } else if (msg.error) {
      fail(`The recording was not analysed: ${msg.error}`);
    }
  };
  ws.onerror = () => {
    if (busy === "record" || busy === "analyse") {
      fail("The connection to the server was lost: is `ser serve` still running? Start it again, " +
           "then record again.");
    }
  };
  ws.onclose = () => {
    if (live === session && !session.stopped) {
      fail("The server ended the recording: press Record to start again.");
    } else if (busy === "analyse" && state.final === null) {
      fail("The server closed the connection before answering: record again.");
    }
  };
  proc.port.onmessage = (e) => {  // a block of 4096 samples of the first channel
    if (session.stopped) return;
    const x = e.data;
    const pcm = new Int16Array(x.length);
    let sum = 0;
    for (let i = 0; i < x.length; i++) {
      pcm[i] = Math.max(-32768, Math.min(32767, Math.round(x[i] * 32768)));
      sum += x[i] * x[i];
    }
    session.chunks.push(pcm);  // the recording the player plays: exactly what the server gets
    if (ws.readyState === WebSocket.OPEN) ws.send(pcm.buffer); else session.pending.push(pcm);
    $("level").value = Math.min(1, Math.sqrt(sum / x.length) * 4);
    const secs = Math.floor((performance.now() - session.start) / 1000);
    if (secs !== session.lastClock) {  // once a second
      session.lastClock = secs;
      $("clock").textContent = `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, "0")}`;
    }
  };
  source.connect(proc); proc.connect(ctx.destination);
  status("Recording: speak; each emotion strip grows every few seconds. Press Stop to end.");
  render("Recording", null, [], 0.1);
  $("stop").focus();
}

function samplesOf(session) {
  return session.chunks.reduce((a, c) => a + c.length, 0);
}

function stopCapture() {
  const session = live;
  live = null;
  session.stopped = true;
  session.proc.port.onmessage = null;
  session.proc.disconnect(); session.source.disconnect();
  release(session.stream, session.ctx);
  return session;
}

function stop() {
  if (!live) {
    if (busy === "record") stopAsked = true;  // the microphone is still starting
    return;
  }
  const session = stopCapture();
  if (!samplesOf(session)) {
    session.ws.close();
    fail("No audio arrived from the microphone: check that it is connected and not muted, then record again.");
    $("record").focus();
    return;
  }
  const seconds = samplesOf(session) / session.rate;
  if (seconds <= info.offset_s) {  // the models skip the first offset_s: nothing left to hear
    session.ws.close();
    fail(`Your recording lasted ${seconds.toFixed(1)} s, too short to hear an emotion (the first ` +
         `${info.offset_s} s are skipped): record for a few seconds.`);
    $("record").focus();
    return;
  }
  const blob = wavBlob(session.chunks, session.rate);
  state.recordedWav = blob;
  $("player").src = URL.createObjectURL(blob);
  if (session.ws.readyState === WebSocket.OPEN) {
    session.ws.send("stop");
    setBusy("analyse");
    status("Analysing the whole recording…");
  } else {
    session.ws.close();
    fail("The connection to the server was lost: is `ser serve` still running? Record again.");
    $("record").focus();
    return;
  }
  $("title").focus();
}

$("record").addEventListener("click", () => record().catch((e) => fail(`The recording failed: ${e.message}`)));
$("stop").addEventListener("click", stop);
$("player").addEventListener("timeupdate", moveCursor);
$("player").addEventListener("seeked", moveCursor);
loadInfo().catch(() => status("Cannot reach the server: start `ser serve`, then reload this page.", "error"));
