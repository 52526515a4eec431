"""Load on loopback: 1, 8 and 32 concurrent streaming clients against `scriptrnn serve`.

    python -m benchmarks.serve_load [--model DIR] [--tokens 200] [--requests 4] [--out benchmarks/results]

Starts the server in a subprocess on 127.0.0.1, then for each concurrency C runs C
clients that each make --requests streaming requests (POST /generate_stream) of
--tokens new tokens, and records total tokens/s and p50/p99 latency to the first
token and to the end. Bounded in requests and time; talks to loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import socket
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str | None, port: int, *flags: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "scriptrnn", "serve", "--port", str(port), "--max-queue", "256", *flags]
    if model:
        cmd.insert(4, model)
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start within 60 s")


async def one_request(client: httpx.AsyncClient, tokens: int, seed: int) -> dict:
    body = {"inputs": "\n", "parameters": {"max_new_tokens": tokens, "seed": seed}}
    start = time.perf_counter()
    first, count = None, 0
    async with client.stream("POST", "/generate_stream", json=body) as response:
        if response.status_code != 200:
            return {"error": response.status_code}
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                count += 1
                first = first or time.perf_counter()
    end = time.perf_counter()
    return {"ttft": first - start, "total": end - start, "tokens": count}


async def run_level(base: str, clients: int, requests: int, tokens: int) -> dict:
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as client:
        async def worker(w: int):
            return [await one_request(client, tokens, seed=w * 1000 + r) for r in range(requests)]

        start = time.perf_counter()
        results = [r for batch in await asyncio.gather(*[worker(w) for w in range(clients)]) for r in batch]
        wall = time.perf_counter() - start
    ok = [r for r in results if "error" not in r]
    ttft = sorted(r["ttft"] for r in ok)
    total = sorted(r["total"] for r in ok)
    pct = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")  # noqa: E731
    return {"clients": clients, "requests": len(results), "errors": len(results) - len(ok),
            "tokens": sum(r["tokens"] for r in ok), "wall_s": wall,
            "tokens_per_s": sum(r["tokens"] for r in ok) / wall,
            "ttft_p50_ms": 1000 * statistics.median(ttft), "ttft_p99_ms": 1000 * pct(ttft, 0.99),
            "end_p50_ms": 1000 * statistics.median(total), "end_p99_ms": 1000 * pct(total, 0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="run directory (default: the built-in model)")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--requests", type=int, default=4, help="requests per client")
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    port = free_port()
    server = start_server(args.model, port)
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(run_level(base, 2, 1, 20))  # warm-up
        rows = [asyncio.run(run_level(base, int(c), args.requests, args.tokens)) for c in args.levels.split(",")]
    finally:
        server.terminate()
        server.wait(timeout=30)
    report(rows, args)


def report(rows: list[dict], args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"date": date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
            f"{__import__('os').cpu_count()} cores", "command": "python " + " ".join(sys.argv),
            "model": args.model or "built-in shakespeare-char (LSTM 2x256)", "tokens_per_request": args.tokens}
    (args.out / "serve_load.json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    base = rows[0]["tokens_per_s"]
    lines = [f"| clients | requests | errors | total tokens/s | × 1 client | first token p50 / p99 ms | "
             f"end p50 / p99 ms |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['clients']} | {r['requests']} | {r['errors']} | {r['tokens_per_s']:,.0f} | "
                     f"{r['tokens_per_s'] / base:.1f} | {r['ttft_p50_ms']:.0f} / {r['ttft_p99_ms']:.0f} | "
                     f"{r['end_p50_ms']:.0f} / {r['end_p99_ms']:.0f} |")
    text = "\n".join(lines)
    (args.out / "serve_load.md").write_text(text + "\n")
    print(json.dumps(meta, indent=2))
    print(text)


if __name__ == "__main__":
    main()
