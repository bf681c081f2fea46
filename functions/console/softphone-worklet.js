// The softphone's audio processors, run on the audio rendering thread (AudioWorklet).
//
// The phone line speaks the Azure Communication Services (ACS) bidirectional media
// streaming protocol: 16-bit little-endian PCM, mono, at 16 or 24 kHz, in 20 ms frames
// (640 or 960 bytes), each frame base64 in one JSON text message (azure-docs,
// articles/communication-services/how-tos/call-automation, audio-streaming quickstart).
// The browser captures and plays at the device's rate (44.1 or 48 kHz as a rule), so
// both directions are resampled here, by us, rather than by asking the AudioContext for
// the stream rate: that way the anti-aliasing filter is one we chose and measured.
//
// * "reddytalk-capture" takes the microphone (mono), low-pass filters and resamples
//   it to the stream rate, and posts each 20 ms frame of Int16 LE PCM to the main
//   thread as a transferred ArrayBuffer.
// * "reddytalk-playback" plays Float32 chunks (already at the context rate) queued
//   through its port, outputs silence when the queue is empty, flushes the queue on
//   {type: "flush"} (barge-in), and reports how many samples it played.
//
// The Resampler is exported too: softphone.js uses it on the main thread to bring the
// receptionist's audio up to the context rate. Importing this file outside a worklet
// registers nothing.

const FILTER_TAPS = 64;
const CUTOFF_OF_LOWER_RATE = 0.45; // pass band edge, as a fraction of the lower rate
const REPORT_EVERY_QUANTA = 16; // playback reports about every 40 ms at 48 kHz

/** Low-pass windowed-sinc (Blackman) FIR taps; `cutoff` is a fraction of the rate. */
function lowPassTaps(count, cutoff) {
  const taps = new Float32Array(count);
  const middle = (count - 1) / 2;
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const x = i - middle;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const phase = (2 * Math.PI * i) / (count - 1);
    const blackman = 0.42 - 0.5 * Math.cos(phase) + 0.08 * Math.cos(2 * phase);
    taps[i] = sinc * blackman;
    sum += taps[i];
  }
  for (let i = 0; i < count; i++) taps[i] /= sum; // unity gain at DC
  return taps;
}

/** A streaming FIR filter: one sample in, one sample out, state kept across calls. */
class Fir {
  constructor(taps) {
    this.taps = taps;
    this.history = new Float32Array(2 * taps.length); // written twice: no wrap in the loop
    this.at = 0;
  }

  next(sample) {
    const { taps, history } = this;
    const n = taps.length;
    history[this.at] = sample;
    history[this.at + n] = sample;
    this.at = (this.at + 1) % n;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += taps[i] * history[this.at + i];
    return sum;
  }
}

/**
 * Streaming sample-rate converter: linear interpolation at a fractional position,
 * band-limited by a FIR low-pass at the higher of the two rates (before decimating,
 * after interpolating), cut off at 0.45 x the lower rate. State (filter history,
 * position) carries across calls, so chunk boundaries are seamless.
 */
export class Resampler {
  constructor(fromRate, toRate, taps = FILTER_TAPS) {
    this.step = fromRate / toRate; // input samples per output sample
    const higher = Math.max(fromRate, toRate);
    const cutoff = (CUTOFF_OF_LOWER_RATE * Math.min(fromRate, toRate)) / higher;
    this.filterIn = fromRate > toRate ? new Fir(lowPassTaps(taps, cutoff)) : null;
    this.filterOut = fromRate < toRate ? new Fir(lowPassTaps(taps, cutoff)) : null;
    this.previous = 0;
    this.phase = 0; // position of the next output between `previous` (0) and the next input (1)
  }

  /** Resamples `input` (Float32Array); calls `emit(sample)` for each output sample. */
  push(input, emit) {
    for (let i = 0; i < input.length; i++) {
      const current = this.filterIn ? this.filterIn.next(input[i]) : input[i];
      while (this.phase < 1) {
        const value = this.previous + this.phase * (current - this.previous);
        emit(this.filterOut ? this.filterOut.next(value) : value);
        this.phase += this.step;
      }
      this.phase -= 1;
      this.previous = current;
    }
  }

  /** Resamples a whole chunk into a new Float32Array. */
  process(input) {
    const out = new Float32Array(Math.ceil(input.length / this.step) + 1);
    let count = 0;
    this.push(input, (sample) => {
      out[count++] = sample;
    });
    return out.subarray(0, count);
  }
}

/** Float in [-1, 1] to a 16-bit sample, clipped. */
function toInt16(sample) {
  const clipped = Math.max(-1, Math.min(1, sample));
  return Math.round(clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff);
}

/** Microphone to 20 ms frames of 16-bit LE PCM at `processorOptions.streamRate`. */
function defineCapture() {
  return class CaptureProcessor extends AudioWorkletProcessor {
    constructor(options) {
      super();
      const { streamRate } = options.processorOptions;
      this.resampler = new Resampler(sampleRate, streamRate); // sampleRate: the context's
      this.frameSamples = streamRate / 50;
      this.startFrame();
      this.emit = (sample) => this.append(sample);
    }

    startFrame() {
      this.frame = new DataView(new ArrayBuffer(this.frameSamples * 2));
      this.filled = 0;
    }

    append(sample) {
      this.frame.setInt16(2 * this.filled++, toInt16(sample), true);
      if (this.filled === this.frameSamples) {
        const buffer = this.frame.buffer;
        this.port.postMessage(buffer, [buffer]);
        this.startFrame();
      }
    }

    process(inputs) {
      const channel = inputs[0][0]; // the node mixes the microphone down to mono
      if (channel) this.resampler.push(channel, this.emit);
      return true;
    }
  };
}

/** Plays queued Float32 chunks at the context rate; silence when there are none. */
function definePlayback() {
  return class PlaybackProcessor extends AudioWorkletProcessor {
    constructor() {
      super();
      this.queue = []; // Float32Array chunks
      this.offset = 0; // read position in queue[0]
      this.played = 0; // samples played since the last report
      this.quanta = 0;
      this.port.onmessage = ({ data }) => this.receive(data);
    }

    receive(data) {
      if (data instanceof Float32Array) {
        this.queue.push(data);
      } else if (data && data.type === "flush") {
        this.queue = [];
        this.offset = 0;
      }
    }

    process(_inputs, outputs) {
      const out = outputs[0][0];
      let written = 0;
      while (written < out.length && this.queue.length > 0) {
        const chunk = this.queue[0];
        const count = Math.min(out.length - written, chunk.length - this.offset);
        out.set(chunk.subarray(this.offset, this.offset + count), written);
        written += count;
        this.offset += count;
        if (this.offset === chunk.length) {
          this.queue.shift();
          this.offset = 0;
        }
      }
      out.fill(0, written);
      this.played += written;
      this.report();
      return true;
    }

    report() {
      if (++this.quanta < REPORT_EVERY_QUANTA) return;
      if (this.played > 0) this.port.postMessage({ played: this.played });
      this.played = 0;
      this.quanta = 0;
    }
  };
}

if (typeof registerProcessor === "function") {
  registerProcessor("reddytalk-capture", defineCapture());
  registerProcessor("reddytalk-playback", definePlayback());
}
