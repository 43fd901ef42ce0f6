#!/usr/bin/env python3
"""Write a voice as `torch.save(tensor)` would (the official `voices/*.pt`), without PyTorch.

A zip holding `<name>/data.pkl` (pickle protocol 2, the tensor rebuilt by
`torch._utils._rebuild_tensor_v2` from a persistent storage id) and `<name>/data/0` (the raw
little-endian float32 storage), shape (510, 1, 256). Used for kokoro-voice's `.pt` test fixture:

  scripts/py scripts/make_voice_pt.py ~/.cache/kokoro-burn/voices/af_heart.bin af_heart.pt
"""
import io
import sys
import zipfile

sys.path.insert(0, __file__.rsplit("/", 1)[0])
# The torch stand-ins (storage, tensor and pickler that write what torch.save writes).
from make_test_pth import Pickler, Storage, Tensor  # noqa: E402


def main():
    src, out = sys.argv[1], sys.argv[2]
    data = open(src, "rb").read()
    assert len(data) == 510 * 256 * 4, "a raw voice pack"
    name = out.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(Tensor(Storage("0", 510 * 256), (510, 1, 256)))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{name}/data.pkl", buf.getvalue())
        z.writestr(f"{name}/data/0", data)
        z.writestr(f"{name}/version", "3\n")


if __name__ == "__main__":
    main()
