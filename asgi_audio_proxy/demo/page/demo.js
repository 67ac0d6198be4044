// The demo page: microphone -> proxy -> speaker, with a live transcript.
// Client protocol: binary frames of PCM16 16 kHz mono both ways; text frames are JSON events
// (ready, queued, text, turn_end, speech_started, speech_stopped, error; we send stop).
// Talking over a reply interrupts it when the proxy runs voice barge-in: the proxy says
// speech_started, cuts the reply (turn_end "stopped") and the page silences what it buffered.
// No build step, no dependencies.

const params = new URLSearchParams(location.search);
// echo cancellation, noise suppression and auto gain help people; ?processing=off gives raw audio
const processing = params.get("processing") !== "off";
const defaultProxy = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/audio_proxy`;
const proxyUrl = params.get("proxy") || defaultProxy;
const FRAME_SAMPLES = 800;          // 50 ms at 16 kHz
const SPEECH_LEVEL = 0.01;          // RMS that counts as talking (about -40 dBFS)

const $ = (id) => document.getElementById(id);
const ui = {
  state: $("state"), talk: $("talk"), stop: $("stop"), level: $("level"), latency: $("latency"),
  transcript: $("transcript"), empty: $("empty"), speaking: $("speaking"),
};

// what the page did, for people (devtools) and for the browser test
const stats = window.demoStats = {
  state: "idle", message: "", session: null,
  samplesSent: 0, samplesReceived: 0, samplesPlayed: 0, buffered: 0, playing: false,
  replyText: "", turns: [], stops: [], playbackReports: 0,
  queued: [],      // every place in the queue the proxy told us: {position, etaS}
  speech: [],      // speech_started / speech_stopped the proxy heard: {type, ms}
  interruptions: [],  // replies cut by the user's voice: {afterMs: first audio -> cut, silentAfterMs}
};

let ctx = null, media = null, capture = null, playback = null, ws = null;
let turn = null;           // the reply being received: {entry, textNode, firstAudioAt, ...}
let userEntry = null;      // the transcript line of the user's current utterance
let lastLoudAt = null;     // performance.now() of the last loud frame sent before a reply
let discarding = false;    // after Stop: drop reply audio until that turn's turn_end
let pendingStop = null;
let lastReply = null;      // the transcript line of the latest reply, to mark it stopped

function setState(state, message = "") {
  stats.state = state;
  stats.message = message;
  ui.state.dataset.state = state;
  const labels = { idle: "Not connected", connecting: "Connecting…", live: "Live", queued: "Queued",
                   error: "Error", closed: "Disconnected" };
  ui.state.textContent = message ? `${labels[state]}: ${message}` : labels[state];
}

function ordinal(n) {
  const tens = n % 100, ones = n % 10;
  const suffix = tens >= 11 && tens <= 13 ? "th" : ({ 1: "st", 2: "nd", 3: "rd" }[ones] || "th");
  return `${n}${suffix}`;
}

function waitText(seconds) {
  if (!(seconds > 0)) return "a moment";
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  return `${Math.round(seconds / 60)} min`;
}

function addEntry(kind, text) {
  ui.empty.hidden = true;
  const li = document.createElement("li");
  li.className = kind;
  const body = document.createElement("span");
  body.textContent = text;
  const meta = document.createElement("span");
  meta.className = "meta";
  li.append(body, meta);
  ui.transcript.append(li);
  li.scrollIntoView({ block: "end" });
  return { li, body, meta };
}

function onCaptureFrame({ pcm, level }) {
  ui.level.value = Math.min(1, Math.max(0, (20 * Math.log10(level + 1e-9) + 60) / 60));
  if (!ws || ws.readyState !== WebSocket.OPEN || stats.state !== "live") return;
  ws.send(pcm);
  stats.samplesSent += FRAME_SAMPLES;
  if (level >= SPEECH_LEVEL && !turn) {
    lastLoudAt = performance.now();
    if (!userEntry) {
      userEntry = addEntry("user", "You: speaking…");
      userEntry.startedAt = lastLoudAt;
    }
    ui.speaking.textContent = "speaking";
  } else if (level < SPEECH_LEVEL) {
    ui.speaking.textContent = "";
  }
}

function onPlaybackMessage(msg) {
  if (msg.type === "stats") {
    stats.playbackReports += 1;
    stats.samplesPlayed = msg.played;
    stats.buffered = msg.buffered;
    stats.playing = msg.playing;
    ui.stop.disabled = !(msg.playing || msg.buffered > 0 || turn);
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

function startReply() {
  if (userEntry) {
    const seconds = ((lastLoudAt - userEntry.startedAt) / 1000).toFixed(1);
    userEntry.body.textContent = `You spoke for ${seconds} s`;
    userEntry = null;
  }
  turn = { entry: addEntry("assistant", ""), text: "", firstAudioAt: null, speechEnd: lastLoudAt };
  lastReply = turn.entry;
}

function onServerText(event) {
  if (event.type === "ready") {
    stats.session = event.session;
    setState("live");
  } else if (event.type === "queued") {
    // the model server holds one conversation at a time: someone else is talking to it
    stats.queued.push({ position: event.position, etaS: event.eta_s });
    setState("queued", `${ordinal(event.position)} in line, about ${waitText(event.eta_s)}`);
  } else if (event.type === "text") {
    if (discarding) return;
    if (!turn) startReply();
    turn.text += event.content;
    stats.replyText += event.content;
    turn.entry.body.textContent = turn.text;
  } else if (event.type === "speech_started" || event.type === "speech_stopped") {
    stats.speech.push({ type: event.type, ms: event.audio_start_ms ?? event.audio_end_ms });
    if (event.type === "speech_started") ui.speaking.textContent = "speaking";
  } else if (event.type === "turn_end") {
    const byVoice = event.reason === "stopped" && !discarding && pendingStop === null;
    if (byVoice) interrupted();  // the proxy heard the user talk over it: the buffer must not play
    playback.port.postMessage({ type: "end" });
    if (turn) {
      const latency = turn.firstAudioAt !== null && turn.speechEnd !== null
        ? Math.max(0, turn.firstAudioAt - turn.speechEnd) : null;
      stats.turns.push({ text: turn.text, latencyMs: latency, reason: event.reason });
      const parts = [event.reason === "complete" ? "reply"
        : byVoice ? "you interrupted it" : `reply ${event.reason}`];
      if (latency !== null) parts.push(`${Math.round(latency)} ms to first audio`);
      turn.entry.meta.textContent = parts.join(" · ");
      if (latency !== null) ui.latency.textContent = `${Math.round(latency)} ms`;
    }
    turn = null;
    discarding = false;
    lastLoudAt = null;
  } else if (event.type === "error") {
    setState("error", event.message || event.error);
  }
}

function onServerAudio(buffer) {
  if (discarding) return;
  if (!turn) startReply();
  if (turn.firstAudioAt === null) turn.firstAudioAt = performance.now();
  stats.samplesReceived += buffer.byteLength / 2;
  playback.port.postMessage({ type: "pcm", pcm: buffer }, [buffer]);
}

function interrupted() {
  pendingStop = { ctxTime: ctx.currentTime, wallTime: performance.now(),
                  outputLatencyMs: (ctx.outputLatency || ctx.baseLatency || 0) * 1000, voice: true };
  playback.port.postMessage({ type: "flush" });
  stats.interruptions.push({ afterMs: turn && turn.firstAudioAt !== null
    ? performance.now() - turn.firstAudioAt : null });
  if (turn) {
    turn.entry.li.classList.add("interrupted");
    turn.text += " …";
    turn.entry.body.textContent = turn.text;
  }
}

function stopReply() {
  if (!playback) return;
  // silence first, then tell the proxy: what is already buffered must not play on
  pendingStop = { ctxTime: ctx.currentTime, wallTime: performance.now(),
                  outputLatencyMs: (ctx.outputLatency || ctx.baseLatency || 0) * 1000 };
  playback.port.postMessage({ type: "flush" });
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "stop" }));
  discarding = turn !== null;
  if (lastReply && (turn || stats.playing || stats.buffered > 0)) {
    lastReply.meta.textContent += lastReply.meta.textContent ? " · stopped" : "stopped";
  }
}

async function start() {
  ui.talk.disabled = true;
  setState("connecting");
  try {
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
  } catch (err) {
    setState("error", `microphone: ${err.message || err}`);
    await teardown();
    return;
  }
  ws = new WebSocket(proxyUrl);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (e) => (typeof e.data === "string" ? onServerText(JSON.parse(e.data)) : onServerAudio(e.data));
  ws.onclose = (e) => {
    if (stats.state !== "error") setState(e.code === 1000 ? "closed" : "error", e.code === 1000 ? "" : `closed (${e.code}) ${e.reason}`);
    teardown();
  };
  ws.onerror = () => setState("error", `cannot reach ${proxyUrl}`);
  ui.talk.textContent = "End conversation";
  ui.talk.setAttribute("aria-pressed", "true");
  ui.talk.disabled = false;
}

async function teardown() {
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  ws = null;
  if (media) media.getTracks().forEach((t) => t.stop());
  media = null;
  if (ctx) await ctx.close();
  ctx = capture = playback = null;
  turn = userEntry = null;
  ui.level.value = 0;
  ui.stop.disabled = true;
  ui.talk.textContent = "Start talking";
  ui.talk.setAttribute("aria-pressed", "false");
  ui.talk.disabled = false;
}

ui.talk.addEventListener("click", () => (ws ? teardown().then(() => setState("closed")) : start()));
ui.stop.addEventListener("click", stopReply);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") { e.preventDefault(); stopReply(); }
});
$("processing").textContent = processing ? "on" : "off";
const toggle = new URLSearchParams(params);
toggle.set("processing", processing ? "off" : "on");
$("processing-toggle").href = `?${toggle}`;
$("processing-toggle").textContent = processing ? "turn off" : "turn on";
