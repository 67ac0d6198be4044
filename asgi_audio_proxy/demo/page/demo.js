// The demo page: microphone -> proxy -> speaker, with a live transcript, over one of two ways.
// - WebRTC (call.js), where the browser supports it and the demo answers calls: the audio is
//   Opus on the call's tracks, the events are OpenAI Realtime's on its data channel, and the
//   browser's own echo cancellation hears what the speaker plays.
// - The WebSocket (here): the proxy's native protocol, binary frames of PCM16 16 kHz mono both
//   ways; text frames are JSON events (ready, resumed, queued, text, turn_end, speech_started,
//   speech_stopped, error; we send stop). A connection cut without a close is resumed with the
//   session's token (resume.js) while the proxy holds the session.
// Talking over a reply interrupts it (the proxy runs voice barge-in) and the page silences it.
// No build step, no dependencies.

import {
  hasTurn, interruptedByVoice, markStopped, microphoneLevel, ordinal, replyAudio, replyText,
  resetTurns, setState, showLevel, speechEvent, stats, turnEnded, ui, waitText,
} from "./conversation.js";
import { isCut, nextRetryMs, resumeUrl } from "./resume.js";

const params = new URLSearchParams(location.search);
// echo cancellation, noise suppression and auto gain help people; ?processing=off gives raw audio
const processing = params.get("processing") !== "off";
const defaultProxy = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/audio_proxy`;
const proxyUrl = params.get("proxy") || defaultProxy;
const FRAME_SAMPLES = 800;          // 50 ms at 16 kHz

let ctx = null, media = null, capture = null, playback = null, ws = null, call = null;
let discarding = false;    // after Stop: drop reply audio until that turn's turn_end
let pendingStop = null;
let resumeToken = null;    // from ready, then from each resumed
let cut = null;            // while resuming: {at, attempts, timer}
let demo = { webrtc: false, calls: "/v1/realtime/calls", resumeGraceS: 30 };  // what the demo serves (/demo.json)

function onCaptureFrame({ pcm, level }) {
  if (!ws || ws.readyState !== WebSocket.OPEN || stats.state !== "live") {
    showLevel(level);
    return;
  }
  microphoneLevel(level);
  ws.send(pcm);
  stats.samplesSent += FRAME_SAMPLES;
}

function onPlaybackMessage(msg) {
  if (msg.type === "stats") {
    stats.playbackReports += 1;
    stats.samplesPlayed = msg.played;
    stats.buffered = msg.buffered;
    stats.playing = msg.playing;
    ui.stop.disabled = !(msg.playing || msg.buffered > 0 || hasTurn());
  } else if (msg.type === "flushed" && pendingStop) {
    // both clocks: the audio clock says when output went silent, the wall clock when we knew
    // plus the output latency: what was already handed to the device still plays
    pendingStop.silentAfterMs = (msg.at - pendingStop.ctxTime) * 1000 + pendingStop.outputLatencyMs;
    pendingStop.reportedAfterMs = performance.now() - pendingStop.wallTime;
    pendingStop.playedAtSilence = msg.played;
    stats.stops.push(pendingStop);
    pendingStop = null;
  }
}

function onServerText(event) {
  if (event.type === "ready" || event.type === "resumed") {
    stats.session = event.session;
    resumeToken = event.resume_token ?? null;
    if (event.type === "resumed" && cut !== null) {
      stats.resumes.push({ session: event.session, attempts: cut.attempts,
                           afterMs: performance.now() - cut.at });
      cut = null;
    }
    setState("live", event.type === "resumed" ? "resumed" : "");
  } else if (event.type === "queued") {
    // the model server holds one conversation at a time: someone else is talking to it
    stats.queued.push({ position: event.position, etaS: event.eta_s });
    setState("queued", `${ordinal(event.position)} in line, about ${waitText(event.eta_s)}`);
  } else if (event.type === "text") {
    if (!discarding) replyText(event.content);
  } else if (event.type === "speech_started" || event.type === "speech_stopped") {
    speechEvent(event.type, event.audio_start_ms ?? event.audio_end_ms);
  } else if (event.type === "turn_end") {
    const byVoice = event.reason === "stopped" && !discarding && pendingStop === null;
    if (byVoice) silenceCutReply();  // the proxy heard the user talk over it: the buffer must not play
    playback.port.postMessage({ type: "end" });
    turnEnded(event.reason, byVoice);
    discarding = false;
  } else if (event.type === "error") {
    setState("error", event.message || event.error);
  }
}

function onServerAudio(buffer) {
  if (discarding) return;
  replyAudio();
  stats.samplesReceived += buffer.byteLength / 2;
  playback.port.postMessage({ type: "pcm", pcm: buffer }, [buffer]);
}

function silenceCutReply() {
  pendingStop = { ctxTime: ctx.currentTime, wallTime: performance.now(),
                  outputLatencyMs: (ctx.outputLatency || ctx.baseLatency || 0) * 1000, voice: true };
  playback.port.postMessage({ type: "flush" });
  interruptedByVoice();
}

function stopReply() {
  if (call) {
    call.stopReply();
    return;
  }
  if (!playback) return;
  // silence first, then tell the proxy: what is already buffered must not play on
  pendingStop = { ctxTime: ctx.currentTime, wallTime: performance.now(),
                  outputLatencyMs: (ctx.outputLatency || ctx.baseLatency || 0) * 1000 };
  playback.port.postMessage({ type: "flush" });
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "stop" }));
  discarding = hasTurn();
  markStopped(hasTurn() || stats.playing || stats.buffered > 0);
}

function connect(url) {
  const socket = ws = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (e) => (typeof e.data === "string" ? onServerText(JSON.parse(e.data)) : onServerAudio(e.data));
  socket.onclose = (e) => onClose(socket, e);
}

function onClose(socket, e) {
  if (socket !== ws) return;  // an earlier connection, already given up
  const opened = stats.session !== null;
  if (isCut(e.code) && resumeToken !== null && opened && stats.state !== "error") {
    resumeLater();
    return;
  }
  if (stats.state === "error") {
    // the proxy said why (a resume_failed, a limit) before it closed: that stays on show
  } else if (cut !== null) {
    setState("error", `could not resume: closed (${e.code}) ${e.reason}`);
  } else if (!opened && isCut(e.code)) {
    setState("error", `cannot reach ${proxyUrl}`);
  } else {
    setState(e.code === 1000 ? "closed" : "error", e.code === 1000 ? "" : `closed (${e.code}) ${e.reason}`);
  }
  teardown();
}

// The connection was cut: try again with the token, backing off, while the proxy holds the session.
function resumeLater() {
  if (cut === null) {
    stats.cuts += 1;
    cut = { at: performance.now(), attempts: 0, timer: null };
  }
  const delay = nextRetryMs(cut.attempts, performance.now() - cut.at, demo.resumeGraceS * 1000);
  if (delay === null) {
    setState("error", "the connection was lost and could not be resumed");
    teardown();
    return;
  }
  setState("reconnecting", cut.attempts ? `try ${cut.attempts + 1}` : "");
  cut.timer = setTimeout(() => {
    cut.attempts += 1;
    connect(resumeUrl(proxyUrl, resumeToken));
  }, delay);
}

async function startSocket() {
  ctx = new AudioContext({ latencyHint: "interactive" });
  await ctx.audioWorklet.addModule("/static/worklet.js");
  media = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: processing, noiseSuppression: processing,
             autoGainControl: processing },
  });
  capture = new AudioWorkletNode(ctx, "capture-16k", { processorOptions: { frameSamples: FRAME_SAMPLES } });
  capture.port.onmessage = (e) => onCaptureFrame(e.data);
  ctx.createMediaStreamSource(media).connect(capture);
  capture.connect(ctx.destination);  // outputs silence; connected so the graph renders it
  playback = new AudioWorkletNode(ctx, "playback-16k", { outputChannelCount: [2] });
  playback.port.onmessage = (e) => onPlaybackMessage(e.data);
  playback.connect(ctx.destination);
  await ctx.resume();
}

async function start() {
  ui.talk.disabled = ui.webrtc.disabled = true;
  setState("connecting");
  stats.session = null;
  stats.transport = ui.webrtc.checked ? "webrtc" : "websocket";
  try {
    if (ui.webrtc.checked) {
      const { openCall } = await import("./call.js");
      call = await openCall({ processing, callsUrl: demo.calls, onEnd: teardown });
    } else {
      await startSocket();
    }
  } catch (err) {
    setState("error", `${call || ui.webrtc.checked ? "call" : "microphone"}: ${err.message || err}`);
    await teardown();
    return;
  }
  if (!call) connect(proxyUrl);
  ui.talk.textContent = "End conversation";
  ui.talk.setAttribute("aria-pressed", "true");
  ui.talk.disabled = false;
}

async function teardown() {
  if (cut !== null) clearTimeout(cut.timer);
  cut = null;
  resumeToken = null;
  const socket = ws;
  ws = null;
  if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000);
  if (call) await call.close();
  call = null;
  if (media) media.getTracks().forEach((t) => t.stop());
  media = null;
  if (ctx) await ctx.close();
  ctx = capture = playback = null;
  resetTurns();
  ui.stop.disabled = true;
  ui.talk.textContent = "Start talking";
  ui.talk.setAttribute("aria-pressed", "false");
  ui.talk.disabled = false;
  ui.webrtc.disabled = !demo.webrtc;
}

ui.talk.addEventListener("click", () => (ws || call || cut ? teardown().then(() => setState("closed")) : start()));
ui.stop.addEventListener("click", stopReply);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") { e.preventDefault(); stopReply(); }
});
document.getElementById("processing").textContent = processing ? "on" : "off";
const toggle = new URLSearchParams(params);
toggle.set("processing", processing ? "off" : "on");
document.getElementById("processing-toggle").href = `?${toggle}`;
document.getElementById("processing-toggle").textContent = processing ? "turn off" : "turn on";

// WebRTC where the browser has it and the demo answers calls; ?transport=websocket (or a
// ?proxy= elsewhere, which the demo cannot call) chooses the WebSocket.
try {
  const answer = await fetch("/demo.json");
  if (answer.ok) demo = { ...demo, ...(await answer.json()) };
} catch (err) {
  console.warn("the demo's settings are unknown", err);
}
demo.webrtc = demo.webrtc && "RTCPeerConnection" in window && !params.get("proxy");
ui.webrtc.checked = demo.webrtc && params.get("transport") !== "websocket";
ui.webrtc.disabled = !demo.webrtc;
ui.webrtc.closest("label").title = demo.webrtc ? ""
  : "WebRTC is not offered here (no RTCPeerConnection, no calls served, or another proxy)";
stats.transport = ui.webrtc.checked ? "webrtc" : "websocket";
document.body.dataset.ready = "true";
