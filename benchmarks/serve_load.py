"""Load benchmark of ``ganscope serve``: concurrent clients asking for images over 127.0.0.1.

Starts the explorer on a run folder (use a CNN run: the slower generator) in its own process,
then CLIENTS threads each send REQUESTS image requests (a fresh seeded z each, as a dragged
slider does) and wait for each answer. Prints p50/p95/p99 latency, requests per second, errors,
and the server's resident memory at the start and the end (a leak shows as growth).

    python benchmarks/serve_load.py RUN_DIR [--clients 4] [--requests 1000]

Only 127.0.0.1 is ever contacted; the run stops by itself. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import torch


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "ganscope", "serve", args.run_dir, "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                runs = httpx.get(f"{url}/api/runs", timeout=2).json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        z_dim = runs[0]["z_dim"]
        # Warm-up: the generator and the classifier are loaded and their kernels chosen.
        with httpx.Client(timeout=30) as client:
            for _ in range(20):
                client.post(f"{url}/api/generate", json={"run": 0, "z": [0.0] * z_dim})
        rss_start = rss_mb(server.pid)
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()

        def client_loop(index: int) -> None:
            noise = torch.Generator().manual_seed(index)
            with httpx.Client(timeout=30) as client:
                for _ in range(args.requests):
                    z = torch.randn(z_dim, generator=noise).tolist()
                    started = time.perf_counter()
                    try:
                        response = client.post(f"{url}/api/generate", json={"run": 0, "z": z})
                        ok = response.status_code == 200
                    except httpx.HTTPError as error:
                        ok, response = False, error
                    seconds = time.perf_counter() - started
                    with lock:
                        latencies.append(seconds)
                        if not ok:
                            errors.append(str(response))

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        rss_end = rss_mb(server.pid)
        quantiles = statistics.quantiles([s * 1000 for s in latencies], n=100)
        result = {
            "model": runs[0]["model"],
            "clients": args.clients,
            "requests": len(latencies),
            "p50_ms": round(quantiles[49], 1),
            "p95_ms": round(quantiles[94], 1),
            "p99_ms": round(quantiles[98], 1),
            "requests_per_second": round(len(latencies) / wall, 1),
            "errors": len(errors),
            "server_rss_mb_start": round(rss_start, 1),
            "server_rss_mb_end": round(rss_end, 1),
        }
        print(json.dumps(result, indent=2))
        return 0 if not errors else 1
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
