"""Guard proxy overhead: proxied vs direct against a loopback upstream with a fixed delay.

The upstream (an OpenAI-compatible server answering after a fixed 50 ms) and the guard proxy
each run in their own process; this process is the load generator. For each mode (plain and
streaming) it measures the direct baseline and the proxy with rules-only tripwires and with
rules + the semantic classifier (the idais policy's tripwires of those detectors), at a fixed
concurrency, and prints latency percentiles, the latency the guard added, and requests/s.

The guard runs as deployed, through ``redline guard serve``: SQLite state store,
hash-chained audit log on disk, every check audited.

    python bench/guard.py [--requests 2000] [--concurrency 32] [--delay-ms 50] [--json]

Goals on 2 cores: added p50 <= 5 ms and p99 <= 20 ms with rules + semantic; >= 500 req/s.
Each configuration is also measured as ``guard serve --workers 2`` (``--workers N``; 1 for
one process only): one process checks a burst of 32 requests one after another on one core,
two share it out over both.
Percentiles are of the steady state on open connections, as a pooled client (the OpenAI SDK,
an agent framework) sees it; the first wave, which opens every connection, is not counted
and its slowest request is printed as ``cold max ms`` for direct and proxied alike.
The proxy's own CPU per request is printed too: on 2 cores the three processes contend, so
latency percentiles move with scheduling more than with the guard's work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

#: Benign requests written for this benchmark; cycled so detectors see varied text.
PROMPTS = [
    "What is a good way to learn the basics of linear algebra?",
    "Summarise the plot of a detective novel set in Lisbon in three sentences.",
    "How do I kill a Python process that ignores Ctrl-C?",
    "Suggest a name for a bakery that sells sourdough and pastries.",
    "Explain how vaccines train the immune system, for a ten-year-old.",
    "What were the main causes of the First World War?",
    "Write a haiku about autumn rain on a tin roof.",
    "How does public-key cryptography let two strangers share a secret?",
    "Give me a packing list for a three-day hiking trip in spring.",
    "Why does bread go stale faster in the fridge?",
    "What is the difference between a virus and a bacterium?",
    "How can I improve the performance of a slow SQL query with joins?",
    "Translate 'good morning, how are you' into Portuguese.",
    "What does a penetration tester do in a typical engagement?",
    "Explain the rules of chess castling.",
    "How do noise-cancelling headphones work?",
]
REPLY = ("Here is a short, friendly answer with a few practical points you can try today, "
         "and a note on where to read more if you want to go deeper.")
#: Uncounted requests per worker before measuring (the first opens its connections).
WARMUP_WAVES = 2


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process and its children (the workers), from Linux
    /proc; 0 for the direct baseline."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own + sum(cpu_seconds(int(child)) for child in children)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- upstream ------------------------------------------------------------------------------


def run_upstream(port: int, delay_s: float) -> None:
    completion = json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": REPLY}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 30, "total_tokens": 50},
    }).encode()
    words = REPLY.split(" ")
    chunks = [b"data: " + json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
        "model": "bench", "choices": [{"index": 0, "delta": {"content": w if i == 0 else " " + w},
                                       "finish_reason": None}]}).encode() + b"\n\n"
        for i, w in enumerate(words)]
    chunks.append(b"data: " + json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
        "model": "bench", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    ).encode() + b"\n\ndata: [DONE]\n\n")

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await asyncio.sleep(delay_s)
        if not body.get("stream"):
            return web.Response(body=completion, content_type="application/json")
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        await out.write(b"".join(chunks))
        await out.write_eof()
        return out

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- proxy ---------------------------------------------------------------------------------


def start_proxy(port: int, upstream: str, detectors: list[str], workers: int,
                folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``redline guard serve`` as deployed (SQLite store, audit log) over the idais policy
    cut down to the tripwires of ``detectors``; returns the process and a client key."""
    import yaml

    from redline.guard.auth import add_key
    from redline.policy.load import load_policy

    policy = load_policy("idais")
    red_lines = []
    for rl in policy.red_lines:
        kept = [tw for tw in rl.tripwires if tw.detector in detectors]
        if kept:
            red_lines.append(rl.model_copy(update={"tripwires": kept}))
    policy = policy.model_copy(update={"red_lines": red_lines})
    policy_file = folder / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(
        policy.model_dump(mode="json", exclude_none=True, by_alias=True)))
    key = add_key(str(folder / "keys.yaml"), "bench", ["client"], None, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "redline.cli", "guard", "serve", "--policy", str(policy_file),
         "--upstream", upstream, "--keys", str(folder / "keys.yaml"),
         "--store", f"sqlite:{folder / 'guard.sqlite'}", "--audit", str(folder / "audit.jsonl"),
         "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, key


# --- load ----------------------------------------------------------------------------------


async def wait_ready(url: str, key: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.post(url + "/chat/completions", json={
                    "model": "bench", "messages": [{"role": "user", "content": "warm up"}]},
                        headers={"Authorization": f"Bearer {key}"}) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


async def load(url: str, key: str, n: int, concurrency: int, stream: bool) -> dict[str, Any]:
    """``n`` measured requests from ``concurrency`` workers on one connection pool, after a
    warm-up of ``WARMUP_WAVES`` rounds per worker that are not counted: the first wave opens
    every connection (client to proxy, proxy to upstream), which costs a TCP handshake and a
    pool miss per request and would otherwise be the whole p99 of a short run. Its latency
    is reported on its own (``cold_*``)."""
    warm = WARMUP_WAVES * concurrency
    latencies: list[float] = []
    cold: list[float] = []
    errors = 0
    counter = iter(range(n + warm))
    connector = aiohttp.TCPConnector(limit=concurrency)
    start = 0.0
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal errors, start
            for i in counter:
                if i == warm:
                    start = time.perf_counter()
                body = {"model": "bench", "stream": stream, "messages": [
                    {"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]}
                t = time.perf_counter()
                async with http.post(url + "/chat/completions", json=body, headers={
                        "Authorization": f"Bearer {key}",
                        "X-Redline-Session": f"s{i % 64}"}) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                took = time.perf_counter() - t
                if i >= warm:
                    latencies.append(took)
                elif i < concurrency:
                    cold.append(took)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    latencies.sort()
    return {"n": n, "errors": errors, "wall_s": wall, "rps": n / wall,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "mean_ms": 1000 * statistics.fmean(latencies),
            "cold_p50_ms": 1000 * statistics.median(cold), "cold_max_ms": 1000 * max(cold)}


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-figure median over rounds (figures of one round stay comparable only in ratio)."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--delay-ms", type=float, default=50.0)
    ap.add_argument("--rounds", type=int, default=3,
                    help="Alternating rounds per configuration; medians are printed.")
    ap.add_argument("--workers", type=int, default=2,
                    help="Also measure `guard serve --workers N` (1: only one process).")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    up_port = free_port()
    upstream = ctx.Process(target=run_upstream, args=(up_port, args.delay_ms / 1000),
                           daemon=True)
    upstream.start()
    up_url = f"http://127.0.0.1:{up_port}/v1"
    configs = {"rules+semantic": (["rules", "semantic"], 1), "rules": (["rules"], 1)}
    if args.workers > 1:
        configs |= {f"{name} x{args.workers}": (detectors, args.workers)
                    for name, (detectors, _) in list(configs.items())}
    runs: dict[str, list[dict[str, Any]]] = {}
    proxies: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory() as state:
            urls = {"direct": up_url}
            keys = {"direct": ""}
            pids: dict[str, int | None] = {"direct": None}
            for name, (detectors, workers) in configs.items():
                port = free_port()
                folder = Path(state) / name.replace(" ", "_")
                folder.mkdir()
                proxy, keys[name] = start_proxy(port, up_url, detectors, workers, folder)
                proxies.append(proxy)
                urls[name] = f"http://127.0.0.1:{port}/v1"
                pids[name] = proxy.pid
            for name, url in urls.items():
                asyncio.run(wait_ready(url, keys[name]))
                asyncio.run(load(url, keys[name], min(200, args.requests), args.concurrency,
                                 False))
            order = list(urls.items())
            for round_no in range(args.rounds):
                # Each round starts with a different configuration, so no one of them always
                # runs right after another (the order itself skewed early measurements).
                shift = round_no % len(order)
                rotated = order[shift:] + order[:shift]
                for stream in (False, True):
                    mode = "stream" if stream else "plain"
                    for name, url in rotated:
                        before = cpu_seconds(pids[name])
                        result = asyncio.run(load(url, keys[name], args.requests,
                                                  args.concurrency, stream))
                        sent = args.requests + WARMUP_WAVES * args.concurrency
                        result["proxy_cpu_ms"] = 1000 * (cpu_seconds(pids[name]) - before) / sent
                        runs.setdefault(f"{mode}/{name}", []).append(result)
    finally:
        for proxy in proxies:
            proxy.terminate()
            proxy.wait(30)
        upstream.terminate()
        upstream.join(10)
    results = {key: _median(rs) for key, rs in runs.items()}
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return
    print(f"guard proxy vs direct: {args.requests} requests x {args.rounds} rounds (medians), "
          f"concurrency {args.concurrency}, upstream delay {args.delay_ms:.0f} ms, "
          f"{os.cpu_count()} cores")
    print(f"{'config':<28}{'p50 ms':>9}{'p99 ms':>9}{'added p50':>11}{'added p99':>11}"
          f"{'req/s':>9}{'x direct':>10}{'guard CPU ms/req':>18}{'errors':>8}"
          f"{'cold max ms':>13}")
    for key, r in sorted(results.items(), key=lambda kv: (kv[0].split("/")[0] != "plain",
                                                           kv[0].split("/")[1] != "direct")):
        mode = key.split("/")[0]
        base = results[f"{mode}/direct"]
        added50 = r["p50_ms"] - base["p50_ms"]
        added99 = r["p99_ms"] - base["p99_ms"]
        print(f"{key:<28}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{added50:>11.1f}{added99:>11.1f}"
              f"{r['rps']:>9.0f}{r['rps'] / base['rps']:>10.2f}{r['proxy_cpu_ms']:>18.2f}"
              f"{r['errors']:>8.0f}{r['cold_max_ms']:>13.1f}")


if __name__ == "__main__":
    main()
