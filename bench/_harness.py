"""Shared by the benchmarks: the summary line every measure ends with (`report`), and for those that run
a real server, gunicorn on 127.0.0.1, child processes and percentiles.
(Files starting with `_` are not run by `make bench`.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]

_TARGET_OPS = {"<=": lambda ratio, target: ratio <= target, ">=": lambda ratio, target: ratio >= target}


def report(name: str, ratio: float, op: str, target: float) -> str:
    """Print one measure's summary line, which `make bench` collects and repeats at the end:

        BENCH <name> ratio=<x> target=<op><y> ok|miss   (e.g. target=<=1.5, target=>=0.5)

    `ratio` is the measure over its floor, both measured in the same run; `op` is "<=" (a cost: at most
    `target` times the floor) or ">=" (a throughput: at least that fraction of the floor's)."""
    if op not in _TARGET_OPS:
        raise ValueError(f"op must be one of {sorted(_TARGET_OPS)}, not {op!r}")
    met = _TARGET_OPS[op](ratio, target)
    line = f"BENCH {name} ratio={_shown(ratio, op, target, met)} target={op}{target:g} {'ok' if met else 'miss'}"
    print(line, flush=True)
    return line


def _shown(ratio: float, op: str, target: float, met: bool) -> str:
    """`ratio` to two decimals, or to as many more as it takes for the figure to read as the verdict does: a
    throughput of 0.4991 against ">=0.5" prints 0.499, not a "0.50 ... miss" that contradicts itself."""
    for decimals in range(2, 7):
        shown = f"{ratio:.{decimals}f}"
        if _TARGET_OPS[op](float(shown), target) == met:
            return shown
    return repr(ratio)


def not_run(name: str, op: str, target: float, reason: str) -> str:
    """The summary line of a measure that was not run (e.g. no PostgreSQL), so the summary says so."""
    if op not in _TARGET_OPS:
        raise ValueError(f"op must be one of {sorted(_TARGET_OPS)}, not {op!r}")
    line = f"BENCH {name} ratio=n/a target={op}{target:g} not-run ({reason})"
    print(line, flush=True)
    return line


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Gunicorn:
    """`gunicorn config.wsgi:application` on 127.0.0.1 (a port the kernel picks), logging to a file.
    Ready once every worker booted and /health answers."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        workers: int,
        worker_class: str = "sync",
        app: str = "config.wsgi:application",
    ):
        self.log_path = log_path
        self.workers = workers
        command = [str(Path(sys.executable).with_name("gunicorn")), app,
                   "--bind", "127.0.0.1:0", "--workers", str(workers), "--worker-class", worker_class,
                   "--timeout", "120", "--chdir", str(BASE_DIR), "--log-level", "info"]  # fmt: skip
        if worker_class == "gthread":
            command += ["--threads", "1", "--keep-alive", "30"]
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.base_url = self._wait_listening()

    def _wait_listening(self) -> str:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited:\n{self.log_path.read_text(errors='replace')}")
            text = self.log_path.read_text(errors="replace")
            found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", text)
            if found and text.count("Booting worker") >= self.workers:
                try:
                    if httpx.get(f"{found.group(1)}/health", timeout=5).status_code == 200:
                        return found.group(1)
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        raise SystemExit(f"gunicorn did not come up:\n{self.log_path.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


class ChildProcesses:
    """Benchmark children (load generators, floor loops) speaking JSON lines on stdin/stdout: each gets
    its message, answers {"ready": ...} after its warm-up, then all are told {"go": true} together and
    answer with their results. `envs` gives each child its environment."""

    def __init__(self, script: Path, envs: list[dict[str, str]]):
        self.processes = [
            subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=env)
            for env in envs
        ]  # fmt: skip

    def _send(self, process: subprocess.Popen, message: dict) -> None:
        process.stdin.write(json.dumps(message) + "\n")
        process.stdin.flush()

    def _read(self, process: subprocess.Popen) -> dict:
        line = process.stdout.readline()
        if not line:
            raise SystemExit(f"bench child exited with {process.wait()}")
        return json.loads(line)

    def run_together(self, messages: list[dict], check_ready=None) -> list[dict]:
        """One message per child; returns their results, the timed parts started together.
        `check_ready(answer)` may stop the run (SystemExit) before anything is timed."""
        for process, message in zip(self.processes, messages, strict=True):
            self._send(process, message)
        for process in self.processes:
            answer = self._read(process)
            if check_ready is not None:
                check_ready(answer)
        for process in self.processes:
            self._send(process, {"go": True})
        return [self._read(process) for process in self.processes]

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    self._send(process, {"quit": True})
                    process.stdin.close()
                    process.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    process.kill()
                    process.wait(timeout=10)
