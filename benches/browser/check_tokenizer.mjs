// Checks that the tokenizer make_kokoro_js_model.py wrote gives Kokoro's ids (as kokoro-js will use it).
import { AutoTokenizer, env } from '@huggingface/transformers';
import os from 'node:os';
import path from 'node:path';
const dir = process.env.KOKORO_JS_MODEL || path.join(os.homedir(), '.cache/kokoro-burn/kokoro-js-model');
env.allowRemoteModels = false;
env.localModelPath = path.dirname(dir) + '/';
const tok = await AutoTokenizer.from_pretrained(path.basename(dir));
const text = process.argv[2] || 'ðə kwˈɪk bɹˈWn fˈɑks.';
console.log(JSON.stringify(tok(text).input_ids.tolist()[0].map(Number)));
