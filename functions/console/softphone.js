// The softphone: call the receptionist from the browser, over the local phone line.
//
// The line is a WebSocket speaking the Azure Communication Services (ACS) bidirectional
// media streaming protocol, caller side, exactly as ACS does it (azure-docs,
// articles/communication-services/how-tos/call-automation, audio-streaming quickstart),
// so the receptionist cannot tell this page from a real phone call:
//
// * we send, first and once: {"kind":"AudioMetadata","audioMetadata":{"subscriptionId",
//   "encoding":"PCM","sampleRate":16000,"channels":1,"length":640}}
// * then every 20 ms: {"kind":"AudioData","audioData":{"timestamp","participantRawID",
//   "data":<base64 16-bit LE mono PCM, 640 bytes at 16 kHz / 960 at 24 kHz>,"silent"}}
// * we receive (PascalCase, as ACS documents it): {"Kind":"AudioData","AudioData":
//   {"Data":<base64 PCM>},"StopAudio":null} to play, {"Kind":"StopAudio",...} to drop
//   whatever is still queued (the caller spoke over the receptionist: barge-in), and
//   {"kind":"TranscriptionData","transcriptionData":{"text","participantRawID",
//   "resultStatus"}} for the live transcript. Anything else is ignored.
//
// Audio runs in softphone-worklet.js: the capture processor resamples the microphone to
// the stream rate and cuts it into frames; the playback processor plays what the main
// thread decoded and resampled up to the context rate. The microphone keeps echo
// cancellation (the answer plays through speakers) but not noise suppression or
// automatic gain: both distort speech the server's recognizer has to understand.

import { Resampler } from "./softphone-worklet.js";

const MICROPHONE = {
  audio: {
    channelCount: 1,
    echoCancellation: true, // the answer plays through speakers
    noiseSuppression: false, // both distort speech for the server's recognizer
    autoGainControl: false,
  },
};
const NORMAL_CLOSURE = 1000;

// -- base64 and PCM -----------------------------------------------------------------

function bytesToBase64(bytes) {
  const CHUNK = 0x8000; // fromCharCode takes its arguments on the stack
  const parts = [];
  for (let i = 0; i < bytes.length; i += CHUNK) {
    parts.push(String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK)));
  }
  return btoa(parts.join(""));
}

function base64ToBytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** 16-bit little-endian PCM to floats in [-1, 1). A trailing odd byte is dropped. */
function pcm16ToFloat(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const samples = new Float32Array(bytes.byteLength >> 1);
  for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(2 * i, true) / 0x8000;
  return samples;
}

// -- the ACS messages we send ------------------------------------------------------

function audioMetadata(sampleRate) {
  return JSON.stringify({
    kind: "AudioMetadata",
    audioMetadata: {
      subscriptionId: crypto.randomUUID(),
      encoding: "PCM",
      sampleRate,
      channels: 1,
      length: (sampleRate / 50) * 2,
    },
  });
}

function audioData(bytes, participantRawId) {
  return JSON.stringify({
    kind: "AudioData",
    audioData: {
      timestamp: new Date().toISOString(),
      participantRawID: participantRawId,
      data: bytesToBase64(bytes),
      silent: bytes.every((b) => b === 0),
    },
  });
}

// -- the call ------------------------------------------------------------------------

function checkOptions({ lineUrl, sampleRate, participantRawId }) {
  if (!/^wss?:\/\//.test(String(lineUrl))) throw new Error("lineUrl must be a ws:// or wss:// URL");
  if (sampleRate !== 16000 && sampleRate !== 24000) {
    throw new Error("sampleRate must be 16000 or 24000");
  }
  if (typeof participantRawId !== "string" || !participantRawId) {
    throw new Error("participantRawId must be a non-empty string");
  }
}

/** Microphone, AudioContext and both processors, wired; torn down again on failure. */
async function openAudio(sampleRate) {
  const microphone = await navigator.mediaDevices.getUserMedia(MICROPHONE);
  const context = new AudioContext(); // the device's rate: resampling is ours
  try {
    await context.audioWorklet.addModule(new URL("softphone-worklet.js", import.meta.url));
    const capture = new AudioWorkletNode(context, "reddytalk-capture", {
      numberOfOutputs: 1, // pulled through the destination; it outputs silence
      outputChannelCount: [1],
      channelCount: 1,
      channelCountMode: "explicit", // the graph mixes any microphone down to mono
      processorOptions: { streamRate: sampleRate },
    });
    const playback = new AudioWorkletNode(context, "reddytalk-playback", {
      numberOfInputs: 0,
      outputChannelCount: [1],
    });
    context.createMediaStreamSource(microphone).connect(capture).connect(context.destination);
    playback.connect(context.destination);
    await context.resume(); // in case the autoplay policy started it suspended
    return { microphone, context, capture, playback };
  } catch (error) {
    microphone.getTracks().forEach((track) => track.stop());
    context.close();
    throw error;
  }
}

/**
 * Calls the receptionist.
 *
 * @param {object} options
 * @param {string} options.lineUrl ws:// URL of the phone line.
 * @param {number} options.sampleRate The stream's rate: 16000 or 24000.
 * @param {string} options.participantRawId Our participantRawID in each AudioData.
 * @param {function({speaker: string, text: string, final: boolean})} [options.onTranscript]
 *   Each transcript message; speaker is "caller" (us) or "receptionist".
 * @param {function(string, string=)} [options.onState] "connecting", "connected", "ended"
 *   (with the reason), or "failed" with the reason.
 * @returns {Promise<{hangUp: function(): Promise<void>, ended: Promise<string>, stats: object}>}
 *   `ended` resolves with why the call ended; `stats` is updated in place:
 *   framesSent, framesReceived, stopAudios, samplesPlayed (at the AudioContext's rate),
 *   bytesPerFrame. Rejects (after onState("failed", reason)) if the call cannot start,
 *   e.g. no microphone or permission refused.
 */
export async function startCall({ lineUrl, sampleRate, participantRawId, onTranscript, onState }) {
  const notify = onState || (() => {});
  notify("connecting");
  let audio;
  try {
    checkOptions({ lineUrl, sampleRate, participantRawId });
    audio = await openAudio(sampleRate);
  } catch (error) {
    notify("failed", describe(error));
    throw error;
  }
  return connect({ audio, lineUrl, sampleRate, participantRawId, onTranscript, notify });
}

function describe(error) {
  if (error && error.name === "NotAllowedError") return "microphone permission refused";
  if (error && error.name === "NotFoundError") return "no microphone";
  return (error && error.message) || String(error);
}

function connect({ audio, lineUrl, sampleRate, participantRawId, onTranscript, notify }) {
  const stats = {
    framesSent: 0,
    framesReceived: 0,
    stopAudios: 0,
    samplesPlayed: 0, // at the AudioContext's rate
    bytesPerFrame: (sampleRate / 50) * 2,
  };
  const upsampler = new Resampler(sampleRate, audio.context.sampleRate);
  const socket = new WebSocket(lineUrl);
  let opened = false; // the metadata went out: frames may follow
  let finished = false;
  let resolveEnded;
  const ended = new Promise((resolve) => (resolveEnded = resolve));

  async function finish(state, reason) {
    if (finished) return;
    finished = true;
    audio.capture.port.onmessage = null;
    audio.microphone.getTracks().forEach((track) => track.stop());
    if (socket.readyState === WebSocket.CONNECTING || socket.readyState === WebSocket.OPEN) {
      socket.close(NORMAL_CLOSURE);
    }
    notify(state, reason);
    resolveEnded(reason);
    await audio.context.close();
  }

  socket.onopen = () => {
    socket.send(audioMetadata(sampleRate));
    opened = true;
    notify("connected");
  };
  socket.onclose = ({ code }) => {
    if (!opened) finish("failed", "connection failed");
    else if (code === NORMAL_CLOSURE) finish("ended", "hung up by the receptionist");
    else finish("failed", `connection lost (code ${code})`);
  };
  socket.onmessage = ({ data }) => {
    if (typeof data !== "string") return;
    receive(data, { audio, upsampler, stats, participantRawId, onTranscript });
  };

  audio.capture.port.onmessage = ({ data: buffer }) => {
    if (!opened || socket.readyState !== WebSocket.OPEN) return; // not on the line: dropped
    socket.send(audioData(new Uint8Array(buffer), participantRawId));
    stats.framesSent++;
    stats.bytesPerFrame = buffer.byteLength;
  };
  audio.playback.port.onmessage = ({ data }) => {
    stats.samplesPlayed += data.played;
  };

  return { hangUp: () => finish("ended", "hung up"), ended, stats };
}

/** One message from the line. Malformed or unknown messages are ignored. */
function receive(text, { audio, upsampler, stats, participantRawId, onTranscript }) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return;
  }
  if (!message || typeof message !== "object") return;
  if (message.Kind === "AudioData") play(message.AudioData, { audio, upsampler, stats });
  else if (message.Kind === "StopAudio") stopAudio({ audio, stats });
  else if (message.kind === "TranscriptionData" && onTranscript) {
    transcript(message.transcriptionData, participantRawId, onTranscript);
  }
}

function play(data, { audio, upsampler, stats }) {
  if (!data || typeof data.Data !== "string") return;
  let bytes;
  try {
    bytes = base64ToBytes(data.Data);
  } catch {
    return; // not base64
  }
  stats.framesReceived++;
  const samples = upsampler.process(pcm16ToFloat(bytes));
  audio.playback.port.postMessage(samples, [samples.buffer]);
}

function stopAudio({ audio, stats }) {
  stats.stopAudios++;
  audio.playback.port.postMessage({ type: "flush" });
}

function transcript(data, participantRawId, onTranscript) {
  if (!data || typeof data.text !== "string") return;
  onTranscript({
    speaker: data.participantRawID === participantRawId ? "caller" : "receptionist",
    text: data.text,
    final: data.resultStatus === "Final",
  });
}
