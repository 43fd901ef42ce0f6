// Compiled (never run) by `tsc -p tests/browser` in scripts/test.sh: the npm package's types, as a
// user of the package writes against them. A type that is wrong or missing fails the suite.
import { KokoroTTS, PRIORITIES, MAX_SPEED, MIN_SPEED, SAMPLE_RATE, TextSplitterStream } from '../../worker/src/index.js';
import type { KokoroError, Priority, StreamChunk, VoiceInfo } from '../../worker/src/index.js';

export async function usage(): Promise<number> {
  const tts = await KokoroTTS.load({ modelUrl: '/model.safetensors', voicesUrl: '/voices/', onProgress: (p) => p.phase });
  const audio = await tts.generate('Hello.', { voice: 'af_heart', speed: MAX_SPEED, priority: 'interactive', deterministic: true });
  const wav: Blob = audio.toWav();
  const firstWord: number | undefined = audio.chunks?.[0]?.words[0]?.start;
  const controller = new AbortController();
  for await (const chunk of tts.stream('One. Two.', { priority: 'bulk', signal: controller.signal })) {
    const c: StreamChunk = chunk;
    const backend: 'webgpu' | 'cpu' = c.backend;
    const unknown: string[] = c.unknown;
    if (c.index === 0 && backend && unknown) break; // leaving the loop cancels
  }
  // Text that arrives in pieces, as kokoro-js's TextSplitterStream takes it.
  const splitter = new TextSplitterStream();
  const spoken = (async () => { for await (const { text, phonemes, audio } of tts.stream(splitter, { voice: 'af_heart' })) void [text, phonemes, audio.length]; })();
  for (const token of ['Hello ', 'there', '.']) splitter.push(token);
  splitter.push('More', ' pieces');
  splitter.flush();
  splitter.close();
  const closed: boolean = splitter.closed;
  await spoken;
  // @ts-expect-error: text pieces only
  splitter.push(42);
  const voices: VoiceInfo[] = await tts.voices();
  const gender: 'female' | 'male' | null = voices[0].gender;
  const priority: Priority = PRIORITIES[0];
  try {
    await tts.generate('Hi.', { voice: 'af_nobody', priority });
  } catch (e) {
    const code: string | undefined = (e as KokoroError).code;
    if (code === 'unknown_voice') tts.dispose();
  }
  // @ts-expect-error: not a priority
  await tts.generate('Hi.', { priority: 'urgent' });
  return SAMPLE_RATE * MIN_SPEED + wav.size + (firstWord ?? 0) + (gender ? 1 : 0) + (closed ? 1 : 0);
}
