#!/usr/bin/env python3
"""Build the float reference of Kokoro-82M from the int8 ONNX export and dump golden tensors.

The int8 export quantizes activations at run time; a float implementation must be compared with
float math on the same weights. This script rewrites every quantized operator of the graph into its
float twin on dequantized weights (WEIGHTS.md, last paragraph):

  DynamicQuantizeLinear + MatMulInteger [+ Cast + Mul]      -> MatMul
  DynamicQuantizeLinear + ConvInteger [+ Add bias] + Cast + Mul -> Conv (float bias)
  DynamicQuantizeLSTM                                        -> LSTM (W, R dequantized, transposed)
  Gather + DequantizeLinear                                  -> Gather on dequantized table

and gives the harmonic source's STFT phase its exact-arithmetic value where float rounding
decides it (see canonical_phase; kokoro-model's Stft does the same),

then exposes the intermediate tensors named in WEIGHTS.md as graph outputs and runs onnxruntime on
a handful of phoneme strings and voices. Each case is written to golden/<name>.safetensors (float32
little-endian, plus int64 durations) with the case's phonemes, voice and speed in the metadata.

Regenerate (~1 minute; scripts/py runs it in the project's venv with the pinned onnx, onnxruntime, numpy):
  scripts/py scripts/make_goldens.py --onnx ~/.cache/kokoro-burn/kokoro-v1_0-int8.onnx \
      --voices ~/.cache/kokoro-burn/voices --out golden
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "crates", "kokoro-model", "data", "config.json")

# (name, phonemes, voice, speed). Phonemes are misaki output for the sentence in the comment.
CASES = [
    # "Hello world."
    ("hello_af_heart", "həlˈO wˈɜɹld.", "af_heart", 1.0),
    # "The quick brown fox jumps."
    ("fox_am_adam", "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps.", "am_adam", 1.0),
    # "Is this what you wanted?"
    ("question_bf_emma", "ɪz ðˈɪs wˌʌt ju wˈɑntᵻd?", "bf_emma", 1.0),
    # "Kokoro speaks, quickly!" at speed 1.3
    ("fast_af_bella", "kˈOkəɹO spˈiks, kwˈɪkli!", "af_bella", 1.3),
]

# Intermediate tensors (WEIGHTS.md) -> golden key. `en` and `asr` are left out: with equal
# durations they are exact gathers of `d` and `t_en`, and they would double the files' size.
TAPS = {
    "/encoder/bert_encoder/Add_output_0": "d_en_t",  # [1, T, 512] before the transpose
    "/encoder/predictor/text_encoder/Concat_4_output_0": "d",
    "/encoder/predictor/duration_proj/linear_layer/Add_output_0": "duration_logits",
    "/encoder/Cast_output_0": "durations",
    "/encoder/Squeeze_output_0": "f0",
    "/encoder/Squeeze_1_output_0": "n",
    "/encoder/text_encoder/Transpose_2_output_0": "t_en",
    "/decoder/decoder/decode.3/Div_4_output_0": "generator_input",
    "/decoder/decoder/generator/conv_post/Conv_output_0": "spectrum",
}


def dequantize(arr, scale, zp, axis=None):
    arr = arr.astype(np.float32)
    zp = zp.astype(np.float32) if zp is not None else np.float32(0)
    if axis is None or np.ndim(scale) == 0 or np.size(scale) == 1:
        return (arr - zp.reshape(-1)[0] if np.size(zp) else arr) * np.float32(np.asarray(scale).reshape(-1)[0])
    shape = [1] * arr.ndim
    shape[axis] = -1
    return (arr - zp.reshape(shape)) * scale.reshape(shape)


def floatify(model):
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    arr = lambda name: numpy_helper.to_array(inits[name])
    producer = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    remove, add, new_inits = set(), [], []

    def float_input(quant_name):
        # input of the DynamicQuantizeLinear that produced `quant_name`
        dq = producer[quant_name]
        assert dq.op_type == "DynamicQuantizeLinear", dq.op_type
        return dq.input[0]

    def follow(name, *ops):
        node = None
        for op in ops:
            cs = [c for c in consumers.get(name, []) if c.op_type == op]
            if not cs:
                return node, name
            node = cs[0]
            remove.add(node.name)
            name = node.output[0]
        return node, name

    for n in g.node:
        if n.op_type == "MatMulInteger":
            w = arr(n.input[1])
            scale = arr(n.input[1].replace("_quantized", "_scale"))
            zp = arr(n.input[3]) if len(n.input) > 3 and n.input[3] else np.zeros_like(scale)
            wf = dequantize(w, scale, zp, axis=1)
            remove.add(n.name)
            _, out = follow(n.output[0], "Cast", "Mul")
            wname = n.input[1].replace("_quantized", "_float")
            new_inits.append(numpy_helper.from_array(wf.astype(np.float32), wname))
            add.append(helper.make_node("MatMul", [float_input(n.input[0]), wname], [out], name=n.name + "_float"))
        elif n.op_type == "ConvInteger":
            w = arr(n.input[1])
            scale = arr(n.input[1].replace("_quantized", "_scale"))
            zp = arr(n.input[3])
            wf = dequantize(w, scale, zp)
            remove.add(n.name)
            bias = None
            adds = [c for c in consumers[n.output[0]] if c.op_type == "Add"]
            if adds:
                # walk the bias branch back to the float bias initializer (Div(bias, scale))
                src = adds[0].input[1]
                while src not in inits:
                    p = producer[src]
                    src = p.input[0]
                bias = src
                _, out = follow(n.output[0], "Add", "Cast", "Mul")
            else:
                _, out = follow(n.output[0], "Cast", "Mul")
            wname = n.input[1].replace("_quantized", "_float")
            new_inits.append(numpy_helper.from_array(wf.astype(np.float32), wname))
            inputs = [float_input(n.input[0]), wname] + ([bias] if bias else [])
            node = helper.make_node("Conv", inputs, [out], name=n.name + "_float")
            node.attribute.extend(n.attribute)
            add.append(node)
        elif n.op_type == "DynamicQuantizeLSTM":
            W = arr(n.input[1]).astype(np.float32) * arr(n.input[8]).reshape(2, 1, 1)
            R = arr(n.input[2]).astype(np.float32) * arr(n.input[10]).reshape(2, 1, 1)
            wname, rname = n.input[1] + "_float", n.input[2] + "_float"
            new_inits.append(numpy_helper.from_array(W.transpose(0, 2, 1).copy(), wname))
            new_inits.append(numpy_helper.from_array(R.transpose(0, 2, 1).copy(), rname))
            remove.add(n.name)
            node = helper.make_node("LSTM", [n.input[0], wname, rname] + list(n.input[3:8]), list(n.output), name=n.name + "_float")
            node.attribute.extend(n.attribute)
            add.append(node)
        elif n.op_type == "DequantizeLinear":
            gather = producer[n.input[0]]
            assert gather.op_type == "Gather"
            table = dequantize(arr(gather.input[0]), arr(n.input[1]), arr(n.input[2]))
            tname = gather.input[0] + "_float"
            new_inits.append(numpy_helper.from_array(table.astype(np.float32), tname))
            remove.update([n.name, gather.name])
            node = helper.make_node("Gather", [tname, gather.input[1]], [n.output[0]], name=gather.name + "_float")
            node.attribute.extend(gather.attribute)
            add.append(node)
    canonical_phase(g, add, new_inits)
    kept = [n for n in g.node if n.name not in remove]
    # insert each float node where its first input is available: simplest is a topological re-sort
    nodes = kept + add
    del g.node[:]
    g.node.extend(toposort(nodes, {i.name for i in g.input} | set(inits) | {i.name for i in new_inits}))
    # A weight shared by several nodes (ALBERT's one layer, run 12 times) is dequantised once per
    # use under the same name: keep one copy. Duplicates made onnxruntime treat those weights as
    # graph inputs, not constants (no pre-packing), and made the file 1.7 times as large.
    g.initializer.extend({i.name: i for i in new_inits}.values())
    # The int8 initializers the float nodes replaced: drop every one no node reads any more.
    used = {name for node in g.node for name in node.input}
    used |= {name for node in g.node for a in node.attribute if a.g for n in a.g.node for name in n.input}
    kept_inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept_inits)
    return model


# Magnitude below which an STFT bin of the harmonic source counts as zero (see canonical_phase).
ZERO_BIN = 1e-6


def canonical_phase(g, add, new_inits):
    """Give the harmonic source's STFT phase its exact-arithmetic value where rounding decides it.

    In unvoiced frames the source is constant, so bins 2..10 are exactly zero in exact arithmetic
    and hold ~3e-8 of rounding noise in float; their phase is then arbitrary and differs between
    implementations (onnxruntime, torch's FFT, ours). DC and Nyquist are real for a real signal,
    but a rounding residue in their imaginary part flips their phase between +pi and -pi. Both this
    reference and kokoro-model therefore use: phase 0 where |X| < ZERO_BIN, and for DC / Nyquist
    exactly 0 (real part >= 0) or +pi (real part < 0), which is torch.angle on the exact values.
    """
    mag, phase, concat = "/decoder/decoder/generator/Sqrt_output_0", "/decoder/decoder/generator/Where_1_output_0", None
    for n in g.node:
        if n.op_type == "Concat" and list(n.input) == [mag, phase]:
            concat = n
    assert concat is not None, "harmonic STFT concat not found"
    p = "/canonical_phase/"
    real_bins = np.zeros((1, 11, 1), dtype=bool)
    real_bins[0, 0, 0] = real_bins[0, 10, 0] = True
    for name, value in [("thr", np.array(ZERO_BIN, np.float32)), ("zero", np.array(0.0, np.float32)),
                        ("pi", np.array(np.pi, np.float32)), ("half_pi", np.array(np.pi / 2, np.float32)),
                        ("real_bins", real_bins)]:
        new_inits.append(numpy_helper.from_array(value, p + name))
    add.extend([
        helper.make_node("Less", [mag, p + "thr"], [p + "small"]),
        helper.make_node("Where", [p + "small", p + "zero", phase], [p + "p1"]),
        helper.make_node("Abs", [p + "p1"], [p + "abs"]),
        helper.make_node("Greater", [p + "abs", p + "half_pi"], [p + "negative_real"]),
        helper.make_node("Where", [p + "negative_real", p + "pi", p + "zero"], [p + "rounded"]),
        helper.make_node("Where", [p + "real_bins", p + "rounded", p + "p1"], [p + "phase"]),
    ])
    concat.input[1] = p + "phase"


def toposort(nodes, available):
    available = set(available) | {""}
    out, pending = [], list(nodes)
    while pending:
        progressed = False
        rest = []
        for n in pending:
            if all(i in available for i in n.input):
                out.append(n)
                available.update(n.output)
                progressed = True
            else:
                rest.append(n)
        if not progressed:
            raise RuntimeError(f"cannot order {len(rest)} nodes, e.g. {rest[0].name} {list(rest[0].input)}")
        pending = rest
    return out


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        dtype = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}[a.dtype]
        b = a.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--voices", required=True)
    ap.add_argument("--out", default="golden")
    ap.add_argument("--save-float-model", help="also write the float reference graph here")
    args = ap.parse_args()
    vocab = json.load(open(CONFIG))["vocab"]
    model = floatify(onnx.load(args.onnx))
    for tap in TAPS:
        model.graph.output.append(helper.make_empty_tensor_value_info(tap))
    if args.save_float_model:
        onnx.save(model, args.save_float_model)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    os.makedirs(args.out, exist_ok=True)
    for name, phonemes, voice, speed in CASES:
        ids = [vocab[c] for c in phonemes if c in vocab]
        pack = np.fromfile(os.path.join(args.voices, voice + ".bin"), dtype="<f4").reshape(510, 1, 256)
        style = pack[min(len(ids), 509)]
        feeds = {
            "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
            "style": style.astype(np.float32),
            "speed": np.array([speed], dtype=np.float32),
        }
        outs = dict(zip(names, sess.run(None, feeds)))
        tensors = {"audio": outs["audio"].astype(np.float32).reshape(-1)}
        for tap, key in TAPS.items():
            a = outs[tap]
            tensors[key] = a.astype(np.int64) if key == "durations" else a.astype(np.float32)
        meta = {"phonemes": phonemes, "voice": voice, "speed": repr(speed), "ids": json.dumps(ids),
                "generator": "scripts/make_goldens.py (float twin of the int8 ONNX export, onnxruntime %s)" % ort.__version__}
        write_safetensors(os.path.join(args.out, name + ".safetensors"), tensors, meta)
        d = tensors["durations"].reshape(-1)
        print(f"{name}: {len(ids)} ids, durations {d.tolist()} -> {int(d.sum())} frames, {tensors['audio'].size} samples",
              file=sys.stderr)


if __name__ == "__main__":
    main()
