// Audio worklet processors of the demo page: microphone capture to 16 kHz PCM16, and gapless
// playback of 16 kHz PCM16 replies through a small jitter buffer. Both resample with a
// Kaiser-windowed sinc (a proper low-pass), never by dropping or repeating samples: dropping
// samples folds everything above 8 kHz back into the speech band.

const TARGET_RATE = 16000;

function besselI0(x) {
  let sum = 1, term = 1;
  for (let k = 1; k < 30; k++) {
    term *= (x / (2 * k)) * (x / (2 * k));
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

// Streaming resampler for any rate pair: each output sample is the input convolved with a
// windowed sinc centred on its (fractional) position. The kernel is tabulated at `resolution`
// points per input sample and interpolated linearly. Cutoff: 0.9 of the lower Nyquist frequency.
class SincResampler {
  constructor(inRate, outRate, zeroCrossings = 16, resolution = 256, beta = 8.6) {
    this.step = inRate / outRate;
    this.cutoff = 0.9 * Math.min(1, outRate / inRate);
    this.half = Math.ceil(zeroCrossings / this.cutoff);
    this.resolution = resolution;
    const size = this.half * resolution + 2;
    this.table = new Float32Array(size);
    const norm = besselI0(beta);
    for (let i = 0; i < size; i++) {
      const x = i / resolution;
      const r = x / this.half;
      const window = r >= 1 ? 0 : besselI0(beta * Math.sqrt(1 - r * r)) / norm;
      const arg = Math.PI * this.cutoff * x;
      this.table[i] = this.cutoff * (x === 0 ? 1 : Math.sin(arg) / arg) * window;
    }
    this.reset();
  }

  reset() {
    // half a kernel of silence in front, so the first output has history to look at
    this.buffer = new Float32Array(this.half);
    this.pos = this.half;
  }

  process(input) {
    const buffer = new Float32Array(this.buffer.length + input.length);
    buffer.set(this.buffer);
    buffer.set(input, this.buffer.length);
    const count = Math.max(0, Math.ceil((buffer.length - this.half - this.pos) / this.step));
    const out = new Float32Array(count);
    const { half, resolution, table } = this;
    let pos = this.pos;
    for (let n = 0; n < count; n++, pos += this.step) {
      const base = Math.floor(pos);
      let acc = 0;
      for (let k = base - half + 1; k <= base + half; k++) {
        const t = Math.abs(pos - k) * resolution;
        const i = Math.floor(t);
        const w = table[i] + (table[i + 1] - table[i]) * (t - i);
        acc += buffer[k] * w;
      }
      out[n] = acc;
    }
    const keep = Math.max(0, Math.floor(pos) - half);
    this.buffer = buffer.slice(keep);
    this.pos = pos - keep;
    return out;
  }
}

// Microphone -> 16 kHz PCM16 frames of `frameSamples`, posted as transferable ArrayBuffers,
// each with the frame's RMS level (full scale 1.0) for the meter and the turn bookkeeping.
class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.frameSamples = (options.processorOptions || {}).frameSamples || 800;
    this.resampler = new SincResampler(sampleRate, TARGET_RATE);
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.sumSquares = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    let mono = channels[0];
    if (channels.length > 1) {  // mix down: the mean of the channels
      mono = new Float32Array(channels[0].length);
      for (const ch of channels) for (let i = 0; i < ch.length; i++) mono[i] += ch[i] / channels.length;
    }
    const out = this.resampler.process(mono);
    for (let i = 0; i < out.length; i++) {
      const s = Math.max(-1, Math.min(1, out[i]));
      this.sumSquares += s * s;
      this.frame[this.filled++] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
      if (this.filled === this.frameSamples) {
        const level = Math.sqrt(this.sumSquares / this.frameSamples);
        const pcm = this.frame.buffer;
        this.port.postMessage({ type: "frame", pcm, level }, [pcm]);
        this.frame = new Int16Array(this.frameSamples);
        this.filled = 0;
        this.sumSquares = 0;
      }
    }
    return true;
  }
}

// 16 kHz PCM16 replies -> the context's rate, played without gaps. A jitter buffer holds
// `prebufferMs` before playback starts (and again after an underrun), so late frames do not
// click. "flush" empties everything at once; the next render quantum is silent and is reported
// with its audio-clock time, so the page can measure how fast Stop silenced the reply.
class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.prebuffer = Math.round(((opts.prebufferMs || 80) / 1000) * sampleRate);
    this.resampler = new SincResampler(TARGET_RATE, sampleRate);
    this.queue = [];      // Float32Arrays at the context rate
    this.head = 0;        // read position in queue[0]
    this.buffered = 0;    // samples queued
    this.playing = false;
    this.played = 0;      // reply samples played, counted at 16 kHz (as are reported buffers)
    this.flushPending = false;
    this.endOfTurn = false;
    this.wasWriting = false;
    this.lastReport = 0;
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  onMessage(data) {
    if (data.type === "pcm") {
      const pcm = new Int16Array(data.pcm);
      const floats = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) floats[i] = pcm[i] / 32768;
      const out = this.resampler.process(floats);
      if (out.length) {
        this.queue.push(out);
        this.buffered += out.length;
      }
      this.endOfTurn = false;
    } else if (data.type === "end") {
      // no more audio this turn: push the filter's tail out, and play what is buffered even if
      // it is under the prebuffer
      const tail = this.resampler.process(new Float32Array(this.resampler.half));
      if (tail.length) {
        this.queue.push(tail);
        this.buffered += tail.length;
      }
      this.resampler.reset();
      this.endOfTurn = true;
    } else if (data.type === "flush") {
      this.queue = [];
      this.head = 0;
      this.buffered = 0;
      this.playing = false;
      this.resampler.reset();
      this.flushPending = true;
    }
  }

  process(inputs, outputs) {
    const output = outputs[0];
    const block = output[0].length;
    let written = 0;
    if (!this.playing && this.buffered > 0 && (this.buffered >= this.prebuffer || this.endOfTurn)) {
      this.playing = true;
    }
    if (this.playing) {
      const channel = output[0];
      while (written < block && this.queue.length) {
        const chunk = this.queue[0];
        const n = Math.min(block - written, chunk.length - this.head);
        channel.set(chunk.subarray(this.head, this.head + n), written);
        written += n;
        this.head += n;
        if (this.head === chunk.length) { this.queue.shift(); this.head = 0; }
      }
      this.buffered -= written;
      this.played += written * TARGET_RATE / sampleRate;
      if (this.buffered === 0) this.playing = false;  // underrun or end: buffer again
      for (let c = 1; c < output.length; c++) output[c].set(channel);
    }
    if (this.flushPending) {
      this.flushPending = false;
      this.port.postMessage({ type: "flushed", at: currentTime, played: Math.round(this.played) });
    }
    if (currentTime - this.lastReport >= 0.05 || (written === 0 && this.wasWriting)) {
      this.lastReport = currentTime;
      this.port.postMessage({
        type: "stats", played: Math.round(this.played), playing: written > 0,
        buffered: Math.round(this.buffered * TARGET_RATE / sampleRate),
      });
    }
    this.wasWriting = written > 0;
    return true;
  }
}

registerProcessor("capture-16k", CaptureProcessor);
registerProcessor("playback-16k", PlaybackProcessor);
