#!/usr/bin/env python3
"""Write a Kokoro checkpoint in the official `kokoro-v1_0.pth` layout, without PyTorch.

Used by the `.pth` importer's test: it takes a float32 canonical file (`kokoro convert
--precision f32`) and writes what `torch.save` would for the official checkpoint: a zip holding
`archive/data.pkl` (pickle protocol 2; tensors rebuilt by `torch._utils._rebuild_tensor_v2` from
persistent storage ids) and `archive/data/<key>` raw little-endian storages. The layout mirrors
the official file: a dict of five state dicts (bert, bert_encoder, predictor, text_encoder,
decoder), keys prefixed with `module.` (DataParallel), weight norm stored unfolded, as
`weight_g`/`weight_v` in the decoder and as `parametrizations.weight.original0/1` elsewhere, plus
tensors the forward pass never reads (bert.pooler, InstanceNorm affine ones/zeros).

  scripts/py scripts/make_test_pth.py IN_f32.safetensors OUT.pth
"""
import collections
import io
import json
import pickle
import struct
import sys
import types
import zipfile

import numpy as np

HERE = __file__.rsplit("/", 1)[0]
MAPPING = HERE + "/../crates/kokoro-model/data/onnx_mapping.tsv"

# Stand-ins so pickle writes `torch.FloatStorage` and `torch._utils._rebuild_tensor_v2` globals.
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, torch_utils


class FloatStorage:
    pass


FloatStorage.__module__ = "torch"
torch.FloatStorage = FloatStorage


def _rebuild_tensor_v2(*args):
    raise NotImplementedError


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride, acc = [], 1
        for d in reversed(self.shape):
            stride.insert(0, acc)
            acc *= d
        return (_rebuild_tensor_v2, (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
        return None


def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: convert with --precision f32 first"
        s, e = info["data_offsets"]
        out[name] = np.frombuffer(b[8 + n + s:8 + n + e], dtype="<f4").reshape(info["shape"])
    return out


def weight_normed():
    names = set()
    for line in open(MAPPING).read().splitlines()[1:]:
        f = line.split("\t")
        if len(f) > 7 and f[4].startswith("weight_norm folded"):
            names.add(f[7].replace(".parametrizations.weight.original{0,1}", ""))
    return names


def main():
    src, dst = sys.argv[1], sys.argv[2]
    tensors = read_safetensors(src)
    normed = weight_normed()
    state = {k: collections.OrderedDict() for k in ["bert", "bert_encoder", "predictor", "text_encoder", "decoder"]}
    blobs = []

    def put(top, key, array):
        array = np.ascontiguousarray(array, dtype="<f4")
        storage = Storage(str(len(blobs)), array.size)
        blobs.append(array.tobytes())
        state[top]["module." + key] = Tensor(storage, list(array.shape))

    for name, w in tensors.items():
        top, rest = name.split(".", 1)
        base = name[: -len(".weight")] if name.endswith(".weight") else None
        if base in normed:
            g = np.sqrt((w.astype(np.float64) ** 2).reshape(w.shape[0], -1).sum(1)).reshape((w.shape[0],) + (1,) * (w.ndim - 1))
            rest_base = rest[: -len(".weight")]
            if top == "decoder":
                put(top, rest_base + ".weight_g", g)
                put(top, rest_base + ".weight_v", w)
            else:
                put(top, rest_base + ".parametrizations.weight.original0", g)
                put(top, rest_base + ".parametrizations.weight.original1", w)
        else:
            put(top, rest, w)
    # Tensors the forward pass never reads.
    put("bert", "pooler.weight", np.zeros((768, 768)))
    put("bert", "pooler.bias", np.zeros(768))
    put("decoder", "encode.norm1.norm.weight", np.ones(514))
    put("decoder", "encode.norm1.norm.bias", np.zeros(514))

    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:

        f = io.BytesIO()
        Pickler(f, protocol=2).dump(state)
        z.writestr("archive/data.pkl", f.getvalue())
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
        for i, b in enumerate(blobs):
            z.writestr(f"archive/data/{i}", b)
    print(f"wrote {dst}: {sum(len(s) for s in state.values())} tensors", file=sys.stderr)


if __name__ == "__main__":
    main()
