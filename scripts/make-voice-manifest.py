#!/usr/bin/env python3
"""Write voices/manifest.json: name, language, gender, size and sha256 of every voice pack in
the npm package kokoro-js@1.2.1 (`package/voices/<name>.bin`).

Rerun it only when the pinned voices package changes (then update KOKORO_JS_SHA256 here and in
crates/kokoro-cli/src/fetch.rs together). It needs only the Python standard library and the
tarball that `kokoro fetch` downloads:

  python3 scripts/make-voice-manifest.py                       # the tarball in the kokoro cache
  python3 scripts/make-voice-manifest.py path/to/kokoro-js-1.2.1.tgz [path/to/manifest.json]

The default tarball is $KOKORO_CACHE/downloads/kokoro-js-1.2.1.tgz, else
~/.cache/kokoro-burn/downloads/kokoro-js-1.2.1.tgz; the default output is voices/manifest.json
next to this scripts/ folder.
"""
import hashlib
import io
import json
import os
import re
import sys
import tarfile

PACKAGE = "kokoro-js@1.2.1"
# Same pin as `KOKORO_JS_SHA256` in crates/kokoro-cli/src/fetch.rs: a manifest made from any other
# tarball would make `kokoro fetch` reject the real one.
KOKORO_JS_SHA256 = "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860"
VOICES_PREFIX = "package/voices/"

# Kokoro's own convention (hexgrad/kokoro pipeline.py LANG_CODES, VOICES.md): the first letter of a
# voice name is its language, the second its gender.
LANGUAGES = {
    "a": "en-us",
    "b": "en-gb",
    "e": "es",
    "f": "fr-fr",
    "h": "hi",
    "i": "it",
    "j": "ja",
    "p": "pt-br",
    "z": "zh",
}
GENDERS = {"f": "female", "m": "male"}
# What kokoro_voice::is_valid_voice_name accepts.
VALID_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def default_tarball():
    cache = os.environ.get("KOKORO_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kokoro-burn")
    return os.path.join(cache, "downloads", "kokoro-js-1.2.1.tgz")


def voice_entries(tgz_bytes):
    entries = []
    with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not (member.isfile() and member.name.startswith(VOICES_PREFIX) and member.name.endswith(".bin")):
                continue
            name = member.name[len(VOICES_PREFIX):-len(".bin")]
            if not VALID_NAME.match(name):
                sys.exit(f"{member.name}: {name!r} is not a valid voice name")
            if name[0] not in LANGUAGES or name[1:2] not in GENDERS:
                sys.exit(f"{member.name}: {name!r} does not start with a known language and gender letter")
            data = tar.extractfile(member).read()
            entries.append({
                "name": name,
                "language": LANGUAGES[name[0]],
                "gender": GENDERS[name[1]],
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "source": f"{PACKAGE}:{member.name}",
            })
    if not entries:
        sys.exit(f"no {VOICES_PREFIX}*.bin in the tarball")
    return sorted(entries, key=lambda e: e["name"])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    tgz = sys.argv[1] if len(sys.argv) > 1 else default_tarball()
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.normpath(os.path.join(here, "..", "voices", "manifest.json"))
    with open(tgz, "rb") as f:
        tgz_bytes = f.read()
    digest = hashlib.sha256(tgz_bytes).hexdigest()
    if digest != KOKORO_JS_SHA256:
        sys.exit(f"{tgz}: sha256 {digest}, expected {KOKORO_JS_SHA256} ({PACKAGE})")
    voices = voice_entries(tgz_bytes)
    # One voice per line: a changed voice shows up as one changed line in a diff.
    lines = ",\n".join("    " + json.dumps(v) for v in voices)
    text = f'{{\n  "source": {json.dumps(PACKAGE)},\n  "voices": [\n{lines}\n  ]\n}}\n'
    json.loads(text)  # the hand-assembled layout must still be JSON
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"{out}: {len(voices)} voices from {PACKAGE}")


if __name__ == "__main__":
    main()
