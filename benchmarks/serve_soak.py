"""Soak and slow-client tests of `scriptrnn serve`: what issue 17 measured by hand, repeatable.

    python -m benchmarks.serve_soak soak [--clients 64] [--seconds 60] [--tokens 100]
    python -m benchmarks.serve_soak slow [--clients 8] [--slow 200] [--seconds 20] [--tokens 50]
    python -m benchmarks.serve_soak cut [--clients 90] [--n 16] [--tokens 2000]

soak: --clients streaming clients (POST /generate_stream, as serve_load.py) request back to
back for --seconds; records requests, errors, p50/p99 latency to the first token and to the
end, and the server's memory (RSS) and open file descriptors after a warm-up and again after
the soak, once the server has settled.

slow: --clients normal clients for --seconds alone, then again while --slow connections
send half a request (half the headers, or all the headers and half the body) and stop,
reopened as the server closes them. Records both runs' latencies, how many slow connections
the server cut off, and its file descriptors during the attack: the others must be unaffected
and the descriptors bounded (the server's --read-timeout closes the slow ones).

cut (issue 28): --clients non-streaming POST /generate requests (--n texts of --tokens tokens
each, what the default limits allow at most) sent on raw sockets and closed within a second,
as clients that give up do. Records what the server held when they left (running, waiting,
refused with 503), how long until its queue and batch were empty, whether the batcher kept
stepping for nobody, and a later request's answer: every cut request must be dropped.

Results go to benchmarks/results/serve_soak.json (one key per mode) and serve_soak.md.
Talks to loopback only; the server is started and stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import httpx

from .serve_load import free_port, one_request, start_server


def server_facts(pid: int) -> dict:
    """Resident memory (MiB) and open descriptors of the server process (Linux /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return {"rss_mib": round(rss_kb / 1024, 1), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def percentiles(values: list[float]) -> dict:
    xs = sorted(values)
    if not xs:
        return {"p50_ms": None, "p99_ms": None}
    return {"p50_ms": round(1000 * statistics.median(xs), 1), "p99_ms": round(1000 * xs[min(len(xs) - 1,
                                                                                          int(0.99 * len(xs)))], 1)}


async def clients_for(base: str, clients: int, seconds: float, tokens: int) -> dict:
    """``clients`` streaming clients requesting back to back for ``seconds``."""
    results: list[dict] = []
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as client:
        async def worker(w: int):
            r = 0
            while time.perf_counter() < stop_at:
                try:
                    results.append(await one_request(client, tokens, seed=w * 100_000 + r))
                except httpx.HTTPError as e:
                    results.append({"error": type(e).__name__})
                r += 1

        await asyncio.gather(*[worker(w) for w in range(clients)])
    ok = [r for r in results if "error" not in r]
    return {"clients": clients, "seconds": seconds, "requests": len(results), "errors": len(results) - len(ok),
            "tokens": sum(r["tokens"] for r in ok), "first_token": percentiles([r["ttft"] for r in ok]),
            "end": percentiles([r["total"] for r in ok])}


async def slow_connection(port: int, stop_at: float, counts: dict, half_body: bool) -> None:
    """Send half a request and wait; when the server closes the connection, open another."""
    head = b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if half_body:
        head += b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"inputs\": "
    else:
        head += b"Content-Ty"
    while time.perf_counter() < stop_at:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts["refused"] += 1
            await asyncio.sleep(0.1)
            continue
        writer.write(head)
        counts["opened"] += 1
        try:
            await asyncio.wait_for(reader.read(), timeout=max(0.1, stop_at - time.perf_counter()))
            counts["cut_off"] += 1  # the server answered 408 or closed it
        except asyncio.TimeoutError:
            pass
        writer.close()


async def under_attack(base: str, port: int, pid: int, args) -> dict:
    stop_at = time.perf_counter() + args.seconds
    counts = {"opened": 0, "cut_off": 0, "refused": 0}
    slow = [asyncio.create_task(slow_connection(port, stop_at, counts, half_body=i % 2 == 1))
            for i in range(args.slow)]
    await asyncio.sleep(1.0)  # let them connect
    fds = []

    async def watch():
        while time.perf_counter() < stop_at:
            fds.append(server_facts(pid)["fds"])
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    normal = await clients_for(base, args.clients, stop_at - time.perf_counter(), args.tokens)
    await asyncio.gather(*slow, watcher)
    return {**normal, "slow_connections": args.slow, **counts, "server_fds_max": max(fds, default=None)}


def soak(base: str, pid: int, args) -> dict:
    asyncio.run(clients_for(base, 4, 3, 20))  # warm-up
    before = server_facts(pid)
    row = asyncio.run(clients_for(base, args.clients, args.seconds, args.tokens))
    time.sleep(5)  # let finished streams and buffers go
    return {**row, "tokens_per_request": args.tokens, "server_before": before, "server_after": server_facts(pid)}


def slow(base: str, port: int, pid: int, args) -> dict:
    asyncio.run(clients_for(base, 2, 2, 20))  # warm-up
    alone = asyncio.run(clients_for(base, args.clients, args.seconds, args.tokens))
    attacked = asyncio.run(under_attack(base, port, pid, args))
    time.sleep(3)
    return {"tokens_per_request": args.tokens, "alone": alone, "under_attack": attacked,
            "server_after": server_facts(pid)}


def load(base: str) -> dict:
    return httpx.get(f"{base}/info", timeout=10).json()["load"]


async def cut_requests(port: int, args) -> tuple[list, int]:
    """Send ``args.clients`` whole-text requests; return their open connections and how many got 503 already."""
    body = json.dumps({"inputs": "\n", "parameters": {"max_new_tokens": args.tokens,
                                                        "num_return_sequences": args.n}}).encode()
    head = (f"POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(args.clients)]
    for _, writer in connections:
        writer.write(head + body)
    await asyncio.sleep(0.5)  # let the server read them all (a queue past --max-queue answers 503 at once)
    refused = 0
    for reader, _ in connections:
        try:
            refused += (await asyncio.wait_for(reader.read(12), 0.001)).startswith(b"HTTP/1.1 503")
        except asyncio.TimeoutError:
            pass
    return connections, refused


def cut(base: str, port: int, args) -> dict:
    async def send_and_cut():
        connections, refused = await cut_requests(port, args)
        held = await asyncio.to_thread(load, base)
        for _, writer in connections:
            writer.close()  # the clients give up, within a second of asking
        return held, refused

    held, refused = asyncio.run(send_and_cut())
    closed = time.perf_counter()
    now = load(base)
    while now["waiting"] + now["running"] and time.perf_counter() - closed < 60:
        time.sleep(0.01)
        now = load(base)
    empty_s = time.perf_counter() - closed
    time.sleep(1.0)
    stepped = load(base)["steps"] - now["steps"]  # steps taken for nobody once the queue was empty
    started = time.perf_counter()
    answer = httpx.post(f"{base}/generate", json={"inputs": "\n", "parameters": {"max_new_tokens": 20}}, timeout=60)
    return {"clients": args.clients, "n": args.n, "tokens_per_request": args.tokens,
            "at_the_cut": {k: held[k] for k in ("running", "waiting", "sequences")}, "refused_503": refused,
            "queue_empty_after_s": round(empty_s, 3), "steps_after_empty": stepped,
            "later_request": {"status": answer.status_code, "seconds": round(time.perf_counter() - started, 3)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["soak", "slow", "cut"])
    parser.add_argument("--model", help="run or exported directory (default: the built-in model)")
    parser.add_argument("--clients", type=int,
                        help="streaming clients (default: 64 for soak, 8 for slow), or cut requests (90)")
    parser.add_argument("--n", type=int, default=16, help="texts per cut request (cut mode)")
    parser.add_argument("--seconds", type=float, help="length of each run (default: 60 for soak, 20 for slow)")
    parser.add_argument("--tokens", type=int,
                        help="new tokens per request (default: 100 for soak, 50 for slow, 2000 for cut)")
    parser.add_argument("--slow", type=int, default=200, help="slow connections held open (slow mode)")
    parser.add_argument("--read-timeout", type=float, default=10.0, help="the server's --read-timeout")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    soaking = args.mode == "soak"
    args.clients = args.clients or {"soak": 64, "slow": 8, "cut": 90}[args.mode]
    args.seconds = args.seconds or (60.0 if soaking else 20.0)
    args.tokens = args.tokens or {"soak": 100, "slow": 50, "cut": 2000}[args.mode]
    port = free_port()
    # cut: the default queue (64), as `scriptrnn serve` runs; the others keep serve_load's 256
    queue = ["--max-queue", "64"] if args.mode == "cut" else []
    server = start_server(args.model, port, "--read-timeout", str(args.read_timeout), *queue)
    try:
        base = f"http://127.0.0.1:{port}"
        if args.mode == "cut":
            row = cut(base, port, args)
        else:
            row = soak(base, server.pid, args) if soaking else slow(base, port, server.pid, args)
    finally:
        server.terminate()
        server.wait(timeout=30)
    report(args, row)


def report(args, row: dict) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "serve_soak.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[args.mode] = {"date": date.today().isoformat(), "command": "python " + " ".join(sys.argv),
                          "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                          "model": args.model or "built-in shakespeare-char", **row}
    path.write_text(json.dumps(results, indent=2) + "\n")
    lines = []
    if "soak" in results:
        s = results["soak"]
        lines += ["| soak | clients | seconds | requests | errors | first token p50 / p99 ms | end p50 / p99 ms | "
                  "RSS MiB before / after | fds before / after |", "|---|---|---|---|---|---|---|---|---|",
                  f"| {s['date']} | {s['clients']} | {s['seconds']:g} | {s['requests']} | {s['errors']} | "
                  f"{s['first_token']['p50_ms']} / {s['first_token']['p99_ms']} | {s['end']['p50_ms']} / "
                  f"{s['end']['p99_ms']} | {s['server_before']['rss_mib']} / {s['server_after']['rss_mib']} | "
                  f"{s['server_before']['fds']} / {s['server_after']['fds']} |", ""]
    if "slow" in results:
        s = results["slow"]
        lines += ["| slow clients | normal clients | requests | errors | end p50 / p99 ms | slow connections "
                  "(opened, cut off) | server fds (max) |", "|---|---|---|---|---|---|---|"]
        for name in ("alone", "under_attack"):
            r = s[name]
            held = f"{r['slow_connections']} ({r['opened']}, {r['cut_off']})" if name == "under_attack" else "0"
            lines.append(f"| {name.replace('_', ' ')} | {r['clients']} | {r['requests']} | {r['errors']} | "
                         f"{r['end']['p50_ms']} / {r['end']['p99_ms']} | {held} | {r.get('server_fds_max', '')} |")
    if "cut" in results:
        s = results["cut"]
        at, later = s["at_the_cut"], s["later_request"]
        lines += ["", "| cut requests | n x tokens | at the cut: running, waiting (sequences) | refused 503 | "
                  "queue empty after s | steps after | a later request |", "|---|---|---|---|---|---|---|",
                  f"| {s['date']}: {s['clients']} | {s['n']} x {s['tokens_per_request']} | {at['running']}, "
                  f"{at['waiting']} ({at['sequences']}) | {s['refused_503']} | {s['queue_empty_after_s']} | "
                  f"{s['steps_after_empty']} | {later['status']} in {later['seconds']} s |"]
    (args.out / "serve_soak.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
