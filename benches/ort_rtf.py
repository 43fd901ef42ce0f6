#!/usr/bin/env python3
"""Time onnxruntime on Kokoro for `kokoro bench` (same phonemes, voice and machine, same run).

Reads a JSON job on stdin: {"onnx": path, "voices": dir, "threads": 2, "repeats": 3,
"utterances": [{"name", "phonemes", "voice"}]} and prints one JSON line per (model, utterance):
{"model": "int8"|"f32", "name", "samples", "seconds": [...]}. The "f32" model is the float twin of
the int8 export built by scripts/make_goldens.py (quantized ops replaced by float ops).
"""
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import make_goldens  # noqa: E402


def main():
    job = json.load(sys.stdin)
    vocab = json.load(open(make_goldens.CONFIG))["vocab"]
    int8 = onnx.load(job["onnx"])
    f32 = make_goldens.floatify(onnx.load(job["onnx"]))
    for label, model in [("int8", int8), ("f32", f32)]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = job.get("threads", 2)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        for u in job["utterances"]:
            ids = [vocab[c] for c in u["phonemes"] if c in vocab]
            pack = np.fromfile(os.path.join(job["voices"], u["voice"] + ".bin"), dtype="<f4").reshape(510, 1, 256)
            feeds = {"tokens": np.array([[0, *ids, 0]], dtype=np.int64), "style": pack[min(len(ids), 509)],
                     "speed": np.array([1.0], dtype=np.float32)}
            audio = sess.run(["audio"], feeds)[0]  # warm-up
            seconds = []
            for _ in range(job.get("repeats", 3)):
                t = time.perf_counter()
                sess.run(["audio"], feeds)
                seconds.append(time.perf_counter() - t)
            print(json.dumps({"model": label, "name": u["name"], "samples": int(audio.size), "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
