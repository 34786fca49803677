"""What a sidecar costs: the core install against the full one (every extra), side by side.

For each variant, in a fresh virtualenv with the pins of constraints.txt: time of
``pip install`` (of a driftline wheel built once, so both pay the same for driftline itself),
size of the environment and number of packages, time from process start to ``/healthz``
answering, and RSS once idle (median of ``--starts`` starts).

    python benchmarks/footprint.py [--cold] [--starts 3]

``--cold`` installs with no pip cache (downloads everything; network-bound); the default
uses the cache, which measures unpacking and linking, not the network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"core": "", "all": "[all]"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def du_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def start_once(venv: Path, work: Path) -> tuple[float, int]:
    """Seconds from process start to a 200 from /healthz, and RSS 3 s after that."""
    port = free_port()
    state = Path(tempfile.mkdtemp(dir=work))
    env = {**os.environ, "DRIFTLINE_STATE_DIR": str(state)}
    started = time.perf_counter()
    process = subprocess.Popen([str(venv / "bin" / "driftline"), "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    try:
        deadline = started + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.perf_counter() > deadline:
                    raise RuntimeError(f"driftline did not become healthy ({venv})") from None
                time.sleep(0.02)
        healthy = time.perf_counter() - started
        time.sleep(3)
        return healthy, rss_bytes(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure(name: str, extras: str, wheel: Path, work: Path, cold: bool, starts: int) -> dict:
    venv = work / f"venv-{name}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    before = du_bytes(venv)
    began = time.perf_counter()
    subprocess.run([*pip, *(["--no-cache-dir"] if cold else []), "-c", str(ROOT / "constraints.txt"),
                    f"{wheel}{extras}"], check=True)
    install = time.perf_counter() - began
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "freeze",
                             "--exclude", "pip", "--exclude", "driftline"],
                            check=True, capture_output=True, text=True).stdout.split()
    runs = [start_once(venv, work) for _ in range(starts)]
    return {"variant": name, "install_s": install, "size_mb": (du_bytes(venv) - before) / 1e6,
            "packages": len(listed), "healthy_s": statistics.median(r[0] for r in runs),
            "idle_rss_mb": statistics.median(r[1] for r in runs) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true", help="install without pip's cache")
    parser.add_argument("--starts", type=int, default=3, help="starts per variant (median)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="driftline-footprint-"))
    try:
        wheels = work / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(ROOT)],
                       check=True)
        [wheel] = wheels.glob("driftline-*.whl")
        rows = [measure(name, extras, wheel, work, args.cold, args.starts) for name, extras in VARIANTS.items()]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'install':8} {'pip install':>12} {'size':>9} {'packages':>9} {'to /healthz':>12} {'idle RSS':>9}")
    for row in rows:
        print(f"{row['variant']:8} {row['install_s']:>11.1f}s {row['size_mb']:>7.0f}MB {row['packages']:>9} "
              f"{row['healthy_s']:>11.2f}s {row['idle_rss_mb']:>7.0f}MB")
    core, full = rows
    print(f"core/all: size {core['size_mb'] / full['size_mb']:.2f}x, packages "
          f"{core['packages'] / full['packages']:.2f}x, idle RSS {core['idle_rss_mb'] / full['idle_rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
