"""Lays out the int8 ONNX export as kokoro-js 1.2.1 expects a hub model folder, offline.

kokoro-js loads `onnx-community/Kokoro-82M-v1.0-ONNX` through transformers.js: `config.json`,
`tokenizer.json`, `tokenizer_config.json`, `onnx/model_quantized.onnx` (dtype q8) and `onnx/model.onnx`
(dtype fp32, kokoro-js's best configuration on the CPU), whose graph takes
`input_ids`, `style`, `speed` and returns `waveform`. The export we can fetch (kokoro-onnx's int8,
see shared/reference/WEIGHTS.md) is the same network with inputs named `tokens` and output `audio`:
this renames those four graph edges (weights and nodes untouched), writes the float twin of the int8
graph as the fp32 model (scripts/make_goldens.py's `floatify`: the dequantised weights, the same
ones our int8 safetensors holds, in float convolutions and matmuls), and writes the tokenizer as a
character-level vocabulary from the model's config (Kokoro's own vocab), with `$` (id 0) around.

    python make_kokoro_js_model.py OUT_DIR   (needs the `onnx` package: run it with scripts/py)
"""
import json
import os
import sys

import onnx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import make_goldens  # noqa: E402

cache = os.environ.get("KOKORO_CACHE", os.path.expanduser("~/.cache/kokoro-burn"))
here = os.path.dirname(os.path.abspath(__file__))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(cache, "kokoro-js-model")
os.makedirs(os.path.join(out, "onnx"), exist_ok=True)

model = onnx.load(os.path.join(cache, "kokoro-v1_0-int8.onnx"))
renames = {"tokens": "input_ids", "audio": "waveform"}
for value in list(model.graph.input) + list(model.graph.output):
    value.name = renames.get(value.name, value.name)
for node in model.graph.node:
    node.input[:] = [renames.get(n, n) for n in node.input]
    node.output[:] = [renames.get(n, n) for n in node.output]
onnx.save(model, os.path.join(out, "onnx", "model_quantized.onnx"))
onnx.save(make_goldens.floatify(model), os.path.join(out, "onnx", "model.onnx"))

config = json.load(open(os.path.join(here, "..", "..", "..", "shared", "reference", "config.json")))
vocab = {"$": 0, **{k: v for k, v in config["vocab"].items()}}
tokenizer = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [{"id": 0, "content": "$", "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True}],
    # Characters outside the vocab are dropped, as Kokoro's own pipeline drops them.
    "normalizer": {"type": "Replace", "pattern": {"Regex": "[^" + "".join(
        "\\" + c if c in "\\]^-[" else c for c in config["vocab"]) + "]"}, "content": ""},
    "pre_tokenizer": {"type": "Split", "pattern": {"Regex": ""}, "behavior": "Isolated", "invert": False},
    "post_processor": {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "$", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "$", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"$": {"id": "$", "ids": [0], "tokens": ["$"]}},
    },
    "decoder": None,
    "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "$"},
}
json.dump(tokenizer, open(os.path.join(out, "tokenizer.json"), "w"), ensure_ascii=False)
json.dump({"model_max_length": 512, "pad_token": "$", "tokenizer_class": "PreTrainedTokenizer", "unk_token": "$"},
          open(os.path.join(out, "tokenizer_config.json"), "w"))
json.dump({"model_type": "style_text_to_speech_2"}, open(os.path.join(out, "config.json"), "w"))
print(out)
