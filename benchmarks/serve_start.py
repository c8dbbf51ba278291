"""Seconds from ``ganscope serve`` (no run folder: the shipped runs) to its first image.

    python benchmarks/serve_start.py [--port 8765]

Starts the command with a fresh, empty ``GANSCOPE_HOME`` (so the shipped runs are copied
first, as on a new machine), polls the page and then ``/api/generate`` for the first run (the
CNN improved generator) until an image comes back, and prints the seconds each took from the
start of the command. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "GANSCOPE_HOME": home}
        started = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "ganscope", "serve", "--port",
                                   str(args.port)], env=env)  # fmt: skip
        page = image = None
        try:
            while image is None and time.perf_counter() - started < 120:
                try:
                    if page is None:
                        urllib.request.urlopen(base + "/", timeout=5).read()
                        page = time.perf_counter() - started
                    runs = json.loads(urllib.request.urlopen(base + "/api/runs", timeout=5).read())
                    z = _post(base + "/api/latent", {"run": 0, "seed": 0})["z"]
                    if "image" in _post(base + "/api/generate", {"run": 0, "z": z}):
                        image = time.perf_counter() - started
                except OSError:
                    time.sleep(0.1)
        finally:
            server.terminate()
            server.wait()
    print(json.dumps({"page_s": round(page, 2) if page else None,
                      "first_image_s": round(image, 2) if image else None,
                      "first_run": runs[0]["name"] if image else None}))  # fmt: skip


if __name__ == "__main__":
    main()
