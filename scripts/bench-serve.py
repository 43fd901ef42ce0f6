#!/usr/bin/env python3
"""kokoro serve under load: time to first audio (p50, p99) and throughput with 1, 8 and 32
concurrent clients, side by side with the same requests sent one at a time, in one run.

    scripts/py scripts/bench-serve.py [--bin target/release/kokoro] [--requests 32] [--clients 1,8,32]
                                      [--profile cpu] [--fifo-too] [--out report.json]

It starts `kokoro serve` on a free loopback port (no response cache, so every request is really
spoken), waits until ready, then for each concurrency sends the same list of texts (a mix of one
to four sentences) as streamed pcm, recording when the first audio bytes and the last arrive.
Throughput is seconds of audio per wall second. The baseline ("one at a time") sends the same
requests sequentially. `--fifo-too` also runs the concurrent loads on a server whose scheduler
takes chunks strictly in arrival order within a class (`engine.first_chunk_first = false`, the
behaviour before a new request's first chunk went first), to show what that policy changes.
Run it on a quiet machine: a build beside it doubles its times.
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx  # the HTTP client the pinned openai package brings (scripts/requirements.txt)

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Kokoro speaks English in two dialects, American and British.",
    "Streaming sends each sentence as soon as it is spoken.",
    "A long text never holds up a short one behind it.",
]
SAMPLE_RATE = 24_000


def texts(n):
    """n texts of one to four sentences, the same list every run."""
    return [" ".join(SENTENCES[: 1 + i % 4]) for i in range(n)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def speak(client, base, text):
    """(seconds to first audio bytes, seconds to the end, seconds of audio)."""
    started = time.perf_counter()
    first = None
    size = 0
    body = {"model": "kokoro", "input": text, "voice": "af_heart", "response_format": "pcm"}
    async with client.stream("POST", f"{base}/v1/audio/speech", json=body) as r:
        r.raise_for_status()
        async for chunk in r.aiter_bytes():
            if chunk and first is None:
                first = time.perf_counter() - started
            size += len(chunk)
    return first, time.perf_counter() - started, size / 2 / SAMPLE_RATE


async def run_load(base, items, clients):
    queue = asyncio.Queue()
    for t in items:
        queue.put_nowait(t)
    results = []

    async def client_loop(client):
        while True:
            try:
                text = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            results.append(await speak(client, base, text))

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        wall = time.perf_counter() - started
    return summarize(results, wall)


def percentile(values, q):
    values = sorted(values)
    return values[max(0, min(len(values) - 1, int(-(-q * len(values) // 1)) - 1))]


def summarize(results, wall):
    firsts = [r[0] for r in results]
    audio = sum(r[2] for r in results)
    return {
        "requests": len(results),
        "wall_s": wall,
        "audio_s": audio,
        "throughput": audio / wall,
        "ttfa_p50_s": statistics.median(firsts),
        "ttfa_p99_s": percentile(firsts, 0.99),
    }


def start_server(args, extra_env):
    """A `kokoro serve` on a free port, ready; (process, base URL, config path)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    # No response cache (every request spoken); queues large enough that nothing is refused.
    config.write("[engine]\nresponse_cache_bytes = 0\nmax_requests = 4096\nmax_queued_chunks = 4096\n[log]\nlevel = \"warn\"\n")
    config.close()
    server = subprocess.Popen(
        [args.bin, "serve", "--device", args.device, "--profile", args.profile, "--listen", f"127.0.0.1:{port}", "--config", config.name],
        stderr=sys.stderr,
        env={**os.environ, **extra_env},
    )
    deadline = time.time() + 300
    while True:
        try:
            if httpx.get(f"{base}/health/ready").status_code == 200:
                return server, base, config.name
        except httpx.HTTPError:
            pass
        if time.time() > deadline or server.poll() is not None:
            server.kill()
            sys.exit("kokoro serve did not become ready")
        time.sleep(0.2)


def stop_server(server, config):
    server.terminate()
    server.wait(timeout=60)
    os.unlink(config)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("KOKORO_BIN", "target/release/kokoro"))
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fifo-too", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()

    items = texts(args.requests)
    counts = [int(c) for c in args.clients.split(",")]
    variants = [("first chunk first", {})]
    if args.fifo_too:
        variants.append(("fifo", {"KOKORO_ENGINE__FIRST_CHUNK_FIRST": "false"}))
    rows = []
    baselines = {}
    for name, env in variants:
        server, base, config = start_server(args, env)
        try:
            # Warm up (first passes allocate).
            asyncio.run(run_load(base, items[:2], 1))
            for clients in counts:
                concurrent = asyncio.run(run_load(base, items, clients))
                if clients not in baselines:
                    baselines[clients] = asyncio.run(run_load(base, items, 1)) if clients > 1 else concurrent
                one_at_a_time = baselines[clients]
                rows.append({"scheduler": name, "clients": clients, "concurrent": concurrent, "one_at_a_time": one_at_a_time})
                print(
                    f"[{name}] {clients:>3} clients: throughput {concurrent['throughput']:.2f} vs {one_at_a_time['throughput']:.2f} audio s/s "
                    f"(x{concurrent['throughput'] / one_at_a_time['throughput']:.2f}); "
                    f"TTFA p50 {concurrent['ttfa_p50_s']:.2f} s p99 {concurrent['ttfa_p99_s']:.2f} s "
                    f"vs one at a time p50 {one_at_a_time['ttfa_p50_s']:.2f} s p99 {one_at_a_time['ttfa_p99_s']:.2f} s",
                    flush=True,
                )
        finally:
            stop_server(server, config)
    report = {"requests": args.requests, "profile": args.profile, "device": args.device, "rows": rows}
    print("\n| scheduler | clients | throughput (audio s / s) | one at a time | ratio | TTFA p50 | TTFA p99 | one at a time p50 | p99 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        c, o = r["concurrent"], r["one_at_a_time"]
        print(
            f"| {r['scheduler']} | {r['clients']} | {c['throughput']:.2f} | {o['throughput']:.2f} | {c['throughput'] / o['throughput']:.2f} "
            f"| {c['ttfa_p50_s']:.2f} s | {c['ttfa_p99_s']:.2f} s | {o['ttfa_p50_s']:.2f} s | {o['ttfa_p99_s']:.2f} s |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
