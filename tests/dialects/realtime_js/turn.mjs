// One full turn through the proxy with @openai/agents' stock WebSocket transport.
// Usage: node turn.mjs ws://host:port/v1/realtime?model=gpt-realtime <api-key>
// Prints one JSON line: the event types seen, those the SDK's own schema refused, errors,
// reply audio bytes and transcript. Exits non-zero when the turn does not finish in time.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { RealtimeAgent, RealtimeSession } from '@openai/agents/realtime';

const [url, apiKey] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
// the transport drops events its zod schema refuses without a word: check each one with it
const schemas = await import(pathToFileURL(path.join(here,
  'node_modules/@openai/agents-realtime/dist/openaiRealtimeEvents.mjs')).href);

const RATE_HZ = 24000;
function utterance() {
  const tone = Math.round(RATE_HZ * 1.0);
  const pcm = new Int16Array(tone + Math.round(RATE_HZ * 1.4));
  for (let i = 0; i < tone; i++) pcm[i] = Math.round(0.3 * 32767 * Math.sin(2 * Math.PI * 440 * i / RATE_HZ));
  return pcm;
}

const seen = [];
const refused = [];
const errors = [];
let audioBytes = 0;
let transcript = '';
const session = new RealtimeSession(new RealtimeAgent({ name: 'assistant', instructions: 'Answer briefly.' }),
  { transport: 'websocket', model: 'gpt-realtime' });
session.on('error', (event) => errors.push(String(event.error?.message ?? JSON.stringify(event.error))));
session.on('audio', (event) => { audioBytes += event.data.byteLength; });
const done = new Promise((resolve) => {
  session.transport.on('*', (event) => {
    seen.push(event.type);
    const result = schemas.realtimeServerEventSchema.safeParse(event);
    if (!result.success) refused.push({ type: event.type, issues: result.error.issues.slice(0, 3) });
    if (event.type === 'response.output_audio_transcript.delta') transcript += event.delta;
    if (event.type === 'response.done') resolve();
  });
});
const deadline = setTimeout(() => {
  console.log(JSON.stringify({ timeout: true, seen, refused, errors, audioBytes, transcript }));
  process.exit(2);
}, Number(process.env.TURN_TIMEOUT_MS ?? 20000));

await session.connect({ apiKey, url });
const pcm = utterance();
const chunk = RATE_HZ / 10;  // 100 ms appends, at real-time pace
const start = Date.now();
for (let i = 0; i < pcm.length; i += chunk) {
  session.sendAudio(pcm.slice(i, i + chunk).buffer);
  const wait = start + ((i + chunk) / RATE_HZ) * 1000 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
await done;
clearTimeout(deadline);
session.close();
console.log(JSON.stringify({ timeout: false, seen, refused, errors, audioBytes, transcript }));
