// The demo page over WebRTC: one call to the proxy's `POST /v1/realtime/calls`.
// The microphone goes out as the call's track and the reply comes back as the remote track,
// both Opus; the browser's own echo cancellation, noise suppression and gain control work on
// them (getUserMedia's constraints), and the reply plays through an <audio> element, which is
// what Chromium's echo canceller takes as the speaker's signal. The call's `oai-events` data
// channel carries OpenAI Realtime events, mapped here onto the transcript (conversation.js).
// Two analysers measure what the page cannot be told: the microphone's level (the meter, the
// end of the user's speech) and the remote track's (when the reply is heard, when it stopped).

import {
  hasTurn, interruptedByVoice, markStopped, microphoneLevel, replyAudio, replyText, setState,
  showLevel, speechEvent, stats, turnEnded, ui,
} from "./conversation.js";

const METER_MS = 20;
const HEARD_RMS = 0.003;     // about -50 dBFS on the remote track: the reply is playing
const QUIET_HOLD_MS = 150;   // this long under it, and a stopped reply counts as silent
const MAX_EVENTS = 1000;     // demoStats.events keeps the latest this many
const REASONS = { completed: "complete", cancelled: "stopped" };  // response.done -> turn_end

function rms(analyser, samples) {
  analyser.getFloatTimeDomainData(samples);
  let sum = 0;
  for (const s of samples) sum += s * s;
  return Math.sqrt(sum / samples.length);
}

class Call {
  constructor(onEnd) {
    this.onEnd = onEnd;
    this.closed = false;
    this.responseActive = false;  // between response.created and response.done
    this.cutByVoice = false;      // this response was ended by the user's voice
    this.discarding = false;      // after Stop: its transcript deltas are not shown
    this.pendingStop = null;      // {wallTime, voice}: waiting for the remote track to go quiet
    this.quietSince = null;       // performance.now() since the remote track has been quiet
  }

  async open({ processing, callsUrl }) {
    this.media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: processing, noiseSuppression: processing,
               autoGainControl: processing },
    });
    this.ctx = new AudioContext({ latencyHint: "interactive" });
    this.mic = this.analyser(this.media);
    this.audio = new Audio();
    this.audio.autoplay = true;
    this.pc = new RTCPeerConnection();
    const track = this.media.getAudioTracks()[0];
    this.pc.addTrack(track, this.media);
    this.pc.ontrack = (e) => this.onTrack(e);
    this.pc.onconnectionstatechange = () => {
      if (["failed", "closed"].includes(this.pc.connectionState)) this.ended(`call ${this.pc.connectionState}`);
    };
    this.channel = this.pc.createDataChannel("oai-events");
    this.channel.onmessage = (e) => this.onEvent(JSON.parse(e.data));
    this.channel.onclose = () => this.ended("the proxy ended the call");
    await this.pc.setLocalDescription(await this.pc.createOffer());
    const answer = await fetch(callsUrl, {
      method: "POST", body: this.pc.localDescription.sdp, headers: { "Content-Type": "application/sdp" },
    });
    if (!answer.ok) {
      const body = await answer.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || `${answer.status} ${answer.statusText}`);
    }
    await this.pc.setRemoteDescription({ type: "answer", sdp: await answer.text() });
    await this.ctx.resume();
    this.meter = setInterval(() => this.measure(), METER_MS);
  }

  analyser(stream) {
    const node = this.ctx.createAnalyser();
    node.fftSize = 1024;  // 21 ms at 48 kHz
    this.ctx.createMediaStreamSource(stream).connect(node);
    return { node, samples: new Float32Array(node.fftSize) };
  }

  onTrack(e) {
    const stream = e.streams[0] || new MediaStream([e.track]);
    this.audio.srcObject = stream;  // Chromium also feeds WebAudio a remote track only if it plays
    this.audio.play().catch((err) => console.warn("the reply cannot play", err));
    this.remote = this.analyser(stream);
  }

  measure() {
    const now = performance.now();
    const level = rms(this.mic.node, this.mic.samples);
    if (stats.state === "live") microphoneLevel(level); else showLevel(level);
    if (!this.remote) return;
    const heard = rms(this.remote.node, this.remote.samples) >= HEARD_RMS;
    stats.playing = heard;
    if (heard) {
      stats.lastHeardAt = now;
      this.quietSince = null;
      if (this.responseActive && !this.discarding && !this.cutByVoice) replyAudio();
    } else if (this.quietSince === null) {
      this.quietSince = now;
    }
    const stop = this.pendingStop;
    if (stop && this.quietSince !== null && now - this.quietSince >= QUIET_HOLD_MS) {
      stop.silentAfterMs = Math.max(0, this.quietSince - stop.wallTime);
      stats.stops.push(stop);
      this.pendingStop = null;
    }
    ui.stop.disabled = !(this.responseActive || heard);
  }

  send(event) {
    if (this.channel.readyState === "open") this.channel.send(JSON.stringify(event));
  }

  // Stop: cancel the response still being made, or drop the audio still queued on the track.
  stopReply() {
    const active = this.responseActive || stats.playing;
    this.pendingStop = { wallTime: performance.now(), voice: false,
                         heardBeforeMs: performance.now() - stats.lastHeardAt };
    this.send({ type: this.responseActive ? "response.cancel" : "output_audio_buffer.clear" });
    this.discarding = this.responseActive;
    markStopped(active);
  }

  // The proxy cut the reply because the user talked over it.
  cutByTheUser() {
    if (this.cutByVoice || this.pendingStop) return;
    this.cutByVoice = true;
    this.pendingStop = { wallTime: performance.now(), voice: true,
                         heardBeforeMs: performance.now() - stats.lastHeardAt };
    interruptedByVoice();
  }

  onEvent(event) {
    stats.events.push(event.type);
    if (stats.events.length > MAX_EVENTS) stats.events.shift();
    switch (event.type) {
      case "session.created":
        stats.session = event.session.id;
        setState("live");
        break;
      case "input_audio_buffer.speech_started":
        speechEvent("speech_started", event.audio_start_ms);
        break;
      case "input_audio_buffer.speech_stopped":
        speechEvent("speech_stopped", event.audio_end_ms);
        break;
      case "response.created":
        this.responseActive = true;
        this.cutByVoice = this.discarding = false;
        break;
      case "response.output_audio_transcript.delta":
      case "response.audio_transcript.delta":
        if (!this.discarding && !this.cutByVoice) replyText(event.delta);
        break;
      case "output_audio_buffer.started":
        if (hasTurn() || !this.discarding) replyAudio();
        break;
      case "output_audio_buffer.cleared":
        if (!this.discarding && !this.pendingStop && this.responseActive) this.cutByTheUser();
        break;
      case "response.done": {
        const status = event.response && event.response.status;
        if (status === "cancelled" && !this.discarding) this.cutByTheUser();
        turnEnded(REASONS[status] || status, this.cutByVoice);
        this.responseActive = this.discarding = false;
        break;
      }
      case "error":
        // a Realtime error answers one request; the call goes on
        setState("live", (event.error && event.error.message) || "error");
        break;
      default:
    }
  }

  ended(message) {
    if (this.closed) return;
    setState("closed", message);
    this.onEnd();
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.meter);
    if (this.channel) this.channel.close();
    if (this.pc) this.pc.close();
    if (this.media) this.media.getTracks().forEach((t) => t.stop());
    if (this.audio) this.audio.srcObject = null;
    if (this.ctx) await this.ctx.close();
  }
}

// A call through the proxy, live once its session.created arrives; `onEnd` runs if the proxy or
// the network ends it.
export async function openCall({ processing, callsUrl, onEnd }) {
  const call = new Call(onEnd);
  try {
    await call.open({ processing, callsUrl });
  } catch (err) {
    await call.close();
    throw err;
  }
  return call;
}
