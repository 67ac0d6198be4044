// What the page shows, whichever way the audio travels: the connection state, the microphone
// meter, the transcript (each utterance, each reply with its latency, a reply cut by Stop or by
// the user's voice) and `window.demoStats`, the page's record for people (devtools) and tests.
// The WebSocket path (demo.js) and the WebRTC path (call.js) report into it; neither draws.

const $ = (id) => document.getElementById(id);
export const ui = {
  state: $("state"), talk: $("talk"), stop: $("stop"), level: $("level"), latency: $("latency"),
  transcript: $("transcript"), empty: $("empty"), speaking: $("speaking"), webrtc: $("webrtc"),
};
const SPEECH_LEVEL = 0.01;          // RMS that counts as talking (about -40 dBFS)

export const stats = window.demoStats = {
  state: "idle", message: "", session: null, transport: null,
  samplesSent: 0, samplesReceived: 0, samplesPlayed: 0, buffered: 0, playing: false,
  replyText: "", turns: [], stops: [], playbackReports: 0,
  queued: [],      // every place in the queue the proxy told us: {position, etaS}
  speech: [],      // speech_started / speech_stopped the proxy heard: {type, ms}
  interruptions: [],  // replies cut by the user's voice: {afterMs: first audio -> cut}
  cuts: 0,         // WebSocket connections lost without a close (the network, not the proxy)
  resumes: [],     // sessions taken back after a cut: {session, attempts, afterMs}
  events: [],      // over WebRTC: the type of every event on the data channel, in order
  lastHeardAt: -Infinity,  // over WebRTC: performance.now() the reply was last heard on the track
};

let turn = null;           // the reply being received: {entry, text, firstAudioAt, speechEnd}
let userEntry = null;      // the transcript line of the user's current utterance
let lastLoudAt = null;     // performance.now() of the last loud microphone frame before a reply
let lastReply = null;      // the transcript line of the latest reply, to mark it stopped

export function setState(state, message = "") {
  stats.state = state;
  stats.message = message;
  ui.state.dataset.state = state;
  const labels = { idle: "Not connected", connecting: "Connecting…", live: "Live", queued: "Queued",
                   reconnecting: "Reconnecting…", error: "Error", closed: "Disconnected" };
  ui.state.textContent = message ? `${labels[state]}: ${message}` : labels[state];
}

export function ordinal(n) {
  const tens = n % 100, ones = n % 10;
  const suffix = tens >= 11 && tens <= 13 ? "th" : ({ 1: "st", 2: "nd", 3: "rd" }[ones] || "th");
  return `${n}${suffix}`;
}

export function waitText(seconds) {
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

// The meter alone (-60 dBFS empty, 0 dBFS full): also while nothing is sent.
export function showLevel(level) {
  ui.level.value = Math.min(1, Math.max(0, (20 * Math.log10(level + 1e-9) + 60) / 60));
}

// One microphone level (RMS, full scale 1.0) as the user hears it sent: the meter, and while no
// reply is under way the start and the end of their utterance (its end starts the latency).
export function microphoneLevel(level) {
  showLevel(level);
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

export function speechEvent(type, ms) {
  stats.speech.push({ type, ms });
  if (type === "speech_started") ui.speaking.textContent = "speaking";
}

export const hasTurn = () => turn !== null;

function startReply() {
  if (userEntry) {
    const seconds = ((lastLoudAt - userEntry.startedAt) / 1000).toFixed(1);
    userEntry.body.textContent = `You spoke for ${seconds} s`;
    userEntry = null;
  }
  turn = { entry: addEntry("assistant", ""), text: "", firstAudioAt: null, speechEnd: lastLoudAt };
  lastReply = turn.entry;
}

export function replyText(content) {
  if (!turn) startReply();
  turn.text += content;
  stats.replyText += content;
  turn.entry.body.textContent = turn.text;
}

// The reply's first audio (heard, or handed to the speaker): the latency's end.
export function replyAudio() {
  if (!turn) startReply();
  if (turn.firstAudioAt === null) turn.firstAudioAt = performance.now();
}

// The user talked over the reply and the proxy cut it: the transcript says so.
export function interruptedByVoice() {
  stats.interruptions.push({ afterMs: turn && turn.firstAudioAt !== null
    ? performance.now() - turn.firstAudioAt : null });
  const entry = turn ? turn.entry : lastReply;
  if (entry && !entry.li.classList.contains("interrupted")) {
    entry.li.classList.add("interrupted");
    if (turn) turn.text += " …";
    entry.body.textContent += " …";
  }
}

// Stop was pressed: the latest reply is marked, if anything of it was still to come.
export function markStopped(active) {
  if (lastReply && active) {
    lastReply.meta.textContent += lastReply.meta.textContent ? " · stopped" : "stopped";
  }
}

// The reply is over: `reason` is the native protocol's (complete, stopped, ...).
export function turnEnded(reason, byVoice) {
  if (turn) {
    const latency = turn.firstAudioAt !== null && turn.speechEnd !== null
      ? Math.max(0, turn.firstAudioAt - turn.speechEnd) : null;
    stats.turns.push({ text: turn.text, latencyMs: latency, reason });
    const parts = [reason === "complete" ? "reply" : byVoice ? "you interrupted it" : `reply ${reason}`];
    if (latency !== null) parts.push(`${Math.round(latency)} ms to first audio`);
    turn.entry.meta.textContent = parts.join(" · ");
    if (latency !== null) ui.latency.textContent = `${Math.round(latency)} ms`;
  }
  turn = null;
  lastLoudAt = null;
}

export function resetTurns() {
  turn = userEntry = null;
  ui.level.value = 0;
}
