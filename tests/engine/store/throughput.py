"""Manual benchmark (not a test): our Hub download vs plain curl of the same 200 MB over loopback.

    .venv/bin/python -m tests.engine.store.throughput [--mb 200] [--rounds 3]

The fake Hub runs in a separate process and answers HEAD /resolve with a redirect to its CDN origin,
as the real Hub does; curl follows the redirect with -L. Our side resolves through huggingface-hub,
streams to a .part file, hashes on the fly, verifies the sha256 and renames. Progress callbacks must
be monotone and end at the file size.

Each of our runs is compared with the curl runs just before and after it, so a machine whose load
changes during the benchmark skews both sides alike; the median of those paired ratios is the
figure to quote, next to the load average printed with it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from huggingface_hub import hf_hub_download

from engine.store.download import download_hf_file

REPO, NAME = "bench/Big-GGUF", "big-Q4_K_M.gguf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is not installed")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "source.bin"
        with source.open("wb") as fh:
            for _ in range(args.mb):
                fh.write(os.urandom(1 << 20))
        size = source.stat().st_size
        server = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("fake_hub.py")), str(source), REPO, NAME],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            endpoint = server.stdout.readline().strip()
            url = f"{endpoint}/{REPO}/resolve/main/{NAME}"
            load_before = os.getloadavg()
            curl_s, ours_s, lib_s, calls = [], [], [], 0
            for _ in range(args.rounds):
                curl_s.append(_time_curl(url, work / "curl.bin", size))
                seconds, calls = _time_ours(endpoint, work / "ours.bin", size)
                ours_s.append(seconds)
                lib_s.append(_time_library(endpoint, work / "lib", size))
            curl_s.append(_time_curl(url, work / "curl.bin", size))  # the "after" of the last round
            load_after = os.getloadavg()
        finally:
            server.stdin.close()
            server.wait(timeout=10)

    mb = size / 1e6
    curl_best, ours_best = min(curl_s), min(ours_s)
    paired = [(curl_s[i] + curl_s[i + 1]) / 2 / ours_s[i] for i in range(args.rounds)]
    print(f"load average (1/5/15 min): {_load(load_before)} before, {_load(load_after)} after; {os.cpu_count()} CPUs")
    print(f"file: {args.mb} MiB ({mb:.0f} MB) over loopback, {args.rounds} rounds each, best / median")
    print(f"curl -L -o : {mb / curl_best:7.0f} MB/s / {mb / statistics.median(curl_s):7.0f} MB/s")
    print(
        f"engine.store: {mb / ours_best:7.0f} MB/s / {mb / statistics.median(ours_s):7.0f} MB/s "
        f"(HEAD + stream + sha256 + rename; {calls} progress callbacks, monotone)"
    )
    print(
        f"hf_hub_download: {mb / min(lib_s):7.0f} MB/s / {mb / statistics.median(lib_s):7.0f} MB/s "
        "(the library's own transfer, size check only)"
    )
    print(f"ratio ours/curl (best): {curl_best / ours_best:.2f}")
    print(
        f"ratio ours/curl (median of {args.rounds} paired rounds): {statistics.median(paired):.2f}  "
        f"[{' '.join(f'{r:.2f}' for r in paired)}]"
    )


def _load(avg: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in avg)


def _time_curl(url: str, out: Path, size: int) -> float:
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run(["curl", "-sS", "-L", "-o", str(out), url], check=True)
    seconds = time.perf_counter() - start
    assert out.stat().st_size == size, "curl got a short file"
    return seconds


def _time_library(endpoint: str, folder: Path, size: int) -> float:
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    path = hf_hub_download(REPO, NAME, endpoint=endpoint, local_dir=folder)
    seconds = time.perf_counter() - start
    assert Path(path).stat().st_size == size
    return seconds


def _time_ours(endpoint: str, out: Path, size: int) -> tuple[float, int]:
    out.unlink(missing_ok=True)
    seen: list[int] = []
    start = time.perf_counter()
    download_hf_file(
        REPO, NAME, "main", out, endpoint=endpoint, app_offline=False, progress=lambda done, total: seen.append(done)
    )
    seconds = time.perf_counter() - start
    assert out.stat().st_size == size
    assert seen == sorted(seen) and seen[-1] == size, "progress was not monotone or did not reach the end"
    return seconds, len(seen)


if __name__ == "__main__":
    main()
