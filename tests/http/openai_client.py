"""The official `openai` package against a running `kokoro serve`: what an OpenAI client does.

Usage: scripts/py tests/http/openai_client.py BASE_URL OUT_DIR   (e.g. http://127.0.0.1:8880/v1)

Writes each response format's file to OUT_DIR/speech.<format> and prints one JSON object: per
format and stream format, the audio's length in samples where Python decodes it unaided (wav,
pcm), content types, errors, and the results of 32 concurrent clients.
crates/kokoro-cli/tests/serve.rs runs it, decodes the other formats and checks the figures; this
script only reports what it got.
"""
import base64
import concurrent.futures
import io
import json
import sys
import time
import wave

import openai

base_url, out_dir = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=300)
TEXT = "Hello world. This is Kokoro, speaking over HTTP."


def samples(fmt, data):
    """Samples of 24 kHz mono 16-bit audio in `fmt` (the formats Python can decode unaided)."""
    if fmt == "pcm":
        return len(data) // 2
    if fmt == "wav":
        with wave.open(io.BytesIO(data)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
            # A streamed WAV says its length is unknown (0xFFFFFFFF): count the data instead.
            return (len(data) - 44) // 2 if w.getnframes() >= 0x7FFFFFFF else w.getnframes()
    return None


report = {"formats": {}, "sse": {}, "streamed": {}}
for fmt in ["wav", "pcm", "mp3", "opus", "aac", "flac"]:
    try:
        r = client.audio.speech.create(model="tts-1", voice="af_heart", input=TEXT, response_format=fmt)
        data = r.read()
        with open(f"{out_dir}/speech.{fmt}", "wb") as f:
            f.write(data)
        report["formats"][fmt] = {"bytes": len(data), "samples": samples(fmt, data), "content_type": r.response.headers.get("content-type")}
    except openai.APIStatusError as e:
        report["formats"][fmt] = {"status": e.status_code, "code": e.body.get("code") if isinstance(e.body, dict) else None}

# Streamed as it is spoken: the first bytes come before the whole audio is made.
for fmt in ["pcm", "wav"]:
    start = time.monotonic()
    first = None
    data = b""
    with client.audio.speech.with_streaming_response.create(model="kokoro", voice="af_heart", input=TEXT + " " + TEXT, response_format=fmt) as r:
        for piece in r.iter_bytes():
            if first is None and piece:
                first = time.monotonic() - start
            data += piece
    report["streamed"][fmt] = {"samples": samples(fmt, data), "first_bytes_s": first, "total_s": time.monotonic() - start}

# stream_format="sse": the SDK hands back the event stream's bytes; decode OpenAI's events.
for fmt in ["pcm"]:
    with client.audio.speech.with_streaming_response.create(
        model="kokoro", voice="af_heart", input=TEXT, response_format=fmt, stream_format="sse"
    ) as r:
        body = r.read().decode()
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    report["sse"][fmt] = {
        "types": [e["type"] for e in events],
        "samples": samples(fmt, audio),
        "usage": events[-1].get("usage"),
    }

# An unknown voice: the SDK raises NotFoundError with OpenAI's error body.
try:
    client.audio.speech.create(model="tts-1", voice="zz_nobody", input="Hi.")
    report["unknown_voice"] = "no error"
except openai.NotFoundError as e:
    report["unknown_voice"] = {"status": e.status_code, "code": e.body.get("code") if isinstance(e.body, dict) else None}


# 32 clients at once, each its own sentence.
def one(i):
    start = time.monotonic()
    r = client.audio.speech.create(model="tts-1", voice="af_heart", input=f"Client number {i} says hello.", response_format="pcm")
    return {"samples": len(r.read()) // 2, "seconds": time.monotonic() - start}


with concurrent.futures.ThreadPoolExecutor(32) as pool:
    results = list(pool.map(one, range(32)))
report["concurrent"] = {"served": sum(1 for r in results if r["samples"] > 0), "samples": [r["samples"] for r in results]}
print(json.dumps(report))
