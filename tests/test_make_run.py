"""`make run` as a newcomer sees it (issue 14): the demo credentials come last, in a framed block, and in
`.local/demo-credentials.json` (mode 0600); the web listens on 127.0.0.1 unless HOST says otherwise; Ctrl-C
stops every process within seconds, with warm Celery shutdowns and nothing logged as an error.

The whole-run test starts Procfile.dev for real (bin/honcho-start, as `make run` does) on a free port, on
the test database (PostgreSQL with DATABASE_URL; without it a copy of the SQLite test database in a file)
and a filesystem broker in a temporary folder, with the demo data seeded by `seed_demo --credentials-file`.
Nothing leaves 127.0.0.1. The other tests check the pieces one by one (bin/supervise, bin/honcho-start,
bin/announce-demo, seed_demo's file) in a second or two each.
"""

from __future__ import annotations

import io
import json
import os
import re
import runpy
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from core import registry
from tests.workers import free_port, test_database_url, worker_environment

pytestmark = pytest.mark.worker

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
WORKERS = {"critical", "messaging", "webhooks", "default", "batch", "sync"}  # Procfile.dev's -n names
STARTUP_TIMEOUT = 120.0  # a loaded 2-core CI machine; about 20 s usually
STOP_TIMEOUT = 20.0  # bin/honcho-start's STOP_WAIT_SECONDS: nothing may need honcho's SIGKILL
BAD_OUTPUT = re.compile(r"\bERROR\b|Traceback|SIGKILL|[Kk]illing")


def announce_demo():
    return runpy.run_path(str(ROOT / "bin" / "announce-demo"))


class Output:
    """The lines a process prints (stdout and stderr), read by a thread as they come."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_for(self, pattern: str, process: subprocess.Popen, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, line in enumerate(self.lines):
                if re.search(pattern, line):
                    return index
            if process.poll() is not None:
                break
            time.sleep(0.2)
        pytest.fail(f"no line matching {pattern!r} within {timeout:.0f}s:\n" + self.text())

    def text(self) -> str:
        return "\n".join(self.lines)


def honcho_line(line: str) -> tuple[str, str]:
    """`HH:MM:SS name.1 | text` -> (name, text)."""
    match = re.match(r"^\d\d:\d\d:\d\d (\S+?)(?:\.\d+)?\s+\| ?(.*)$", line)
    return (match.group(1), match.group(2)) if match else ("", line)


def descendants(root: int) -> set[int]:
    """Every process below `root` now (ps works on Linux and macOS alike)."""
    listing = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    children: dict[int, list[int]] = {}
    pairs = [tuple(map(int, row.split())) for row in listing.strip().splitlines()]
    for pid, ppid in pairs:
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    result = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    return bool(result.stdout.strip()) and not result.stdout.strip().startswith("Z")


def database_url_for_processes(tmp_path: Path) -> str:
    """The test database, for processes outside this one: PostgreSQL's URL, or SQLite copied to a file (the
    test database is in memory)."""
    if connection.vendor == "postgresql":
        return test_database_url()
    import sqlite3

    connection.ensure_connection()
    target_path = tmp_path / "db.sqlite3"
    target = sqlite3.connect(target_path)
    try:
        connection.connection.backup(target)
    finally:
        target.close()
    return f"sqlite:///{target_path}"


def base_demo_data_only(monkeypatch) -> None:
    """seed_demo with the base demo data only (the admin, the platform user, the docs): the file, the block
    and the processes are what is tested here, and the full data take 10-20 s to seed (tests/core and each
    app test them; the block's rendering of their shapes is tested below)."""
    base = [contributor for contributor in registry.demo_contributors() if contributor.app_label == "accounts"]
    monkeypatch.setattr(registry, "demo_contributors", lambda: base)


def seed(credentials_file: Path, *options: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("seed_demo", *options, "--credentials-file", str(credentials_file), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- the whole run ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_make_run_prints_credentials_last_listens_on_loopback_and_stops_cleanly(tmp_path, monkeypatch):
    base_demo_data_only(monkeypatch)
    credentials_file = tmp_path / "demo-credentials.json"
    demo = json.loads(seed(credentials_file, "--json")[0])
    assert {"admin", "platform", "docs"} <= set(demo)
    port = free_port()
    env = worker_environment(
        tmp_path,
        APP_ENV="development",
        DATABASE_URL=database_url_for_processes(tmp_path),
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        PORT=str(port),
        WEB_PORT=str(port),
        DEMO_CREDENTIALS_FILE=str(credentials_file),
        MARK_MEDIA_ROOT=str(tmp_path / "mark-media"),
        PRIVATE_MEDIA_ROOT=str(tmp_path / "private-media"),
    )
    env.pop("HOST", None)  # the default is what a newcomer gets

    started = time.monotonic()
    honcho = subprocess.Popen(
        [sys.executable, str(ROOT / "bin" / "honcho-start"), "-f", "Procfile.dev"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    output = Output(honcho)
    processes: set[int] = set()
    try:
        closing = output.wait_for(r"ready\.1\s+\| \| Ctrl-C stops everything\.", honcho, STARTUP_TIMEOUT) + 1
        time.sleep(1.0)  # anything printed right after the block would show now
        up_after = time.monotonic() - started
        processes = descendants(honcho.pid)

        # The framed block: after every start-up banner, and the last thing printed (the web's autoreloader
        # may restart it when a source file changes meanwhile: those lines are no start-up noise).
        lines = [honcho_line(line) for line in output.lines]
        opening = max(i for i, (name, text) in enumerate(lines[:closing]) if name == "ready" and text.startswith("==="))
        assert lines[closing][0] == "ready" and lines[closing][1].startswith("===")
        block = "\n".join(text for _, text in lines[opening : closing + 1])
        before = "\n".join(f"{name} {text}" for name, text in lines[:opening])
        for worker in WORKERS:
            assert re.search(rf"^worker-{worker} .*{worker}@\S+ ready\.$", before, re.MULTILINE), worker
        assert re.search(r"^beat .*beat: Starting", before, re.MULTILINE)
        assert f"Starting development server at http://127.0.0.1:{port}/" in before
        after = [(name, text) for name, text in lines[closing + 1 :] if name != "web" or not text.strip()]
        assert after == [] or all(name == "web" for name, _ in after), after

        # What it says: the admin, each demo login, where the file is; the file is seed_demo's object.
        url = f"http://127.0.0.1:{port}"
        assert f"{url}/admin/" in block and f"{url}/docs" in block
        for login in logins(demo):
            assert login in block, login
        assert str(credentials_file) in block and "DEMO ONLY" in block
        assert json.loads(credentials_file.read_text()) == demo
        assert stat.S_IMODE(credentials_file.stat().st_mode) == 0o600

        # Loopback only: 127.0.0.1 answers; another local address (Linux routes all of 127/8 to lo) does not.
        connect_within(("127.0.0.1", port), STARTUP_TIMEOUT)  # the autoreloader may be restarting the web
        if sys.platform.startswith("linux"):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.2", port), timeout=5).close()

        # Ctrl-C: the terminal signals the foreground group, honcho's.
        assert len(processes) >= 20, processes  # web (+ reloader), 6 workers and their pools, beat, ready
        stop_index = len(output.lines)
        stopping = time.monotonic()
        os.killpg(honcho.pid, signal.SIGINT)
        returncode = honcho.wait(timeout=STOP_TIMEOUT + 5)
        stopped_after = time.monotonic() - stopping
        deadline = time.monotonic() + 3
        while (left := {pid for pid in processes if alive(pid)}) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)  # the reader thread catches up with the last lines
        shutdown = "\n".join(output.lines[stop_index:])

        assert returncode == 0, shutdown
        assert not left, f"still running after Ctrl-C: {sorted(left)}"
        assert stopped_after < STOP_TIMEOUT, shutdown
        assert not BAD_OUTPUT.search(output.text()), BAD_OUTPUT.findall(output.text())
        stopped = dict(re.findall(r"system\s+\| (\S+?)\.1 stopped \(rc=(-?\d+)\)", shutdown))
        assert stopped == dict.fromkeys({"web", "beat", "ready", *(f"worker-{w}" for w in WORKERS)}, "0"), stopped
        assert shutdown.count("worker: Warm shutdown (MainProcess)") == len(WORKERS)  # each once, each warm
        print(f"make run: block after {up_after:.1f}s; Ctrl-C -> all {len(processes)} processes gone in "
              f"{stopped_after:.1f}s")  # fmt: skip
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait(timeout=10)
        for pid in processes:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def connect_within(address: tuple[str, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(address, timeout=5).close()
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def logins(demo: dict) -> list[str]:
    """`user / password` for every user name in seed_demo's object (the block shows each)."""
    found = []

    def walk(value: dict) -> None:
        for key, item in value.items():
            if isinstance(item, dict):
                walk(item)
            elif key == "username":
                found.append(f"{item} / {value['password']}")
            elif key.endswith("Username"):
                found.append(f"{item} / {value[key[: -len('Username')] + 'Password']}")

    walk(demo)
    return found


# --- seed_demo's credentials file --------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_writes_the_credentials_file_owner_only_and_says_where(tmp_path, monkeypatch):
    base_demo_data_only(monkeypatch)
    credentials_file = tmp_path / "local" / "demo-credentials.json"
    credentials_file.parent.mkdir()
    credentials_file.write_text("{}")
    credentials_file.chmod(0o644)

    out, _ = seed(credentials_file, "--json")

    assert json.loads(credentials_file.read_text()) == json.loads(out)  # the --json object, whole
    assert stat.S_IMODE(credentials_file.stat().st_mode) == 0o600  # tightened, not only for a new file

    out, _ = seed(credentials_file)  # as `make run` calls it

    assert f"saved in {credentials_file}" in out and "DEMO ONLY" in out
    assert json.loads(credentials_file.read_text())["admin"]["password"] not in out  # bin/announce-demo shows it
    assert [path.name for path in credentials_file.parent.iterdir()] == ["demo-credentials.json"]  # no partial


# --- bin/announce-demo -------------------------------------------------------------------------------

DEMO = {
    "platform": {"baseUrl": "http://localhost:8000", "tokenUrl": "/api/v1/auth/token", "username": "demo",
                 "password": "pw-1", "organizationId": "org_x"},
    "admin": {"url": "/admin/", "username": "admin", "password": "pw-2"},
    "docs": "/docs",
    "careos": {"platform": "businessos", "apiKey": "bos_key", "publicKeyPem": "-----BEGIN PUBLIC KEY-----\n"},
    "mark": {"username": "demo", "password": "pw-1", "otherUsername": "other", "otherPassword": "pw-3"},
    "therapist": {"supervisor": {"username": "sup", "password": "pw-4"}},
}  # fmt: skip


def test_announced_block_lists_the_admin_first_then_every_login(tmp_path):
    announce = announce_demo()
    path = tmp_path / "demo-credentials.json"

    block = announce["framed_block"](DEMO, url="http://127.0.0.1:8123", host="127.0.0.1", credentials_path=path,
                                     missing=[])  # fmt: skip

    lines = block.splitlines()
    assert lines[0] == lines[-1] and set(lines[0]) == {"="}  # framed
    assert all(line.startswith("| ") or line == "|" for line in lines[1:-1])
    body = "\n".join(lines)
    assert body.index("http://127.0.0.1:8123/admin/") < body.index("admin / pw-2") < body.index("demo / pw-1")
    assert "http://127.0.0.1:8123/docs" in body and "token: POST /api/v1/auth/token" in body
    assert "other: other / pw-3" in body and "supervisor: sup / pw-4" in body
    assert "X-Platform businessos" in body and "apiKey bos_key" in body
    assert "BEGIN PUBLIC KEY" not in body and "org_x" not in body  # those stay in the file
    assert str(path) in body and "every interface" not in body


def test_announced_block_warns_when_listening_everywhere_or_something_is_missing(tmp_path):
    announce = announce_demo()
    path = tmp_path / "none.json"

    block = announce["framed_block"](None, url=announce["base_url"]("0.0.0.0", 8000), host="0.0.0.0",
                                     credentials_path=path, missing=["worker sync"])  # fmt: skip

    assert "http://127.0.0.1:8000/" in block  # where a browser on this machine goes
    assert "HOST=0.0.0.0: the web listens on every interface" in block
    assert "Not answering yet: worker sync" in block
    assert f"No demo credentials in {path}" in block
    assert announce["read_credentials"](path) is None
    assert announce["base_url"]("::1", 8000) == "http://[::1]:8000"


def test_announce_demo_waits_for_every_worker_in_procfile():
    announce = announce_demo()
    assert announce["procfile_workers"](ROOT / "Procfile.dev") == WORKERS


# --- bin/supervise and bin/honcho-start ----------------------------------------------------------------

SIGNAL_RECORDER = """
import os, signal, sys, time
log = sys.argv[1]
def note(signum, frame):
    with open(log, "a") as f:
        f.write(f"{os.getpid()} {os.getpgid(0)} {signal.Signals(signum).name}\\n")
    if sys.argv[2] == "obey":
        sys.exit(0)
for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, note)
with open(log, "a") as f:
    f.write(f"{os.getpid()} {os.getpgid(0)} started\\n")
while True:
    time.sleep(0.1)
"""


def start_supervised(tmp_path: Path, mode: str, **env: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "signals.log"
    supervisor = subprocess.Popen(
        [str(ROOT / "bin" / "supervise"), sys.executable, "-c", SIGNAL_RECORDER, str(log), mode],
        stderr=subprocess.PIPE, start_new_session=True, env={**os.environ, **env},
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not (log.exists() and "started" in log.read_text()):
        assert supervisor.poll() is None and time.monotonic() < deadline, "the command did not start"
        time.sleep(0.05)
    return supervisor, log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_supervise_passes_honchos_group_signal_to_its_command_once_and_exits(tmp_path, signum):
    """honcho signals the whole process group of an entry: bin/supervise's. The command (a Celery worker)
    is in a group of its own, so it hears the stop once, from bin/supervise, which then exits 0 with it and
    starts nothing again."""
    supervisor, log = start_supervised(tmp_path, "obey")
    try:
        os.killpg(supervisor.pid, signum)  # what honcho does
        assert supervisor.wait(timeout=10) == 0
        rows = [row.split() for row in log.read_text().splitlines()]
        (pid, group, _), *signals_received = rows
        assert int(group) != os.getpgid(0) and int(group) != supervisor.pid  # a group of its own
        assert [name for *_, name in signals_received] == [signal.Signals(signum).name]  # once
        assert not alive(int(pid))
        assert "starting it again" not in supervisor.stderr.read().decode()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(timeout=5)


def test_supervise_kills_a_command_that_ignores_the_stop_signal_after_its_grace(tmp_path):
    supervisor, log = start_supervised(tmp_path, "ignore", SUPERVISE_STOP_GRACE_SECONDS="1")
    try:
        started = time.monotonic()
        os.killpg(supervisor.pid, signal.SIGTERM)
        assert supervisor.wait(timeout=10) == 0
        assert 1 <= time.monotonic() - started < 5
        pid = int(log.read_text().split()[0])
        assert not alive(pid)
        assert "did not stop within 1s of the stop signal: killing it" in supervisor.stderr.read().decode()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(timeout=5)


def run_honcho_start(tmp_path: Path, procfile: str, *, stop_after: float | None) -> tuple[int, str]:
    (tmp_path / "Procfile").write_text(procfile)
    honcho = subprocess.Popen(
        [sys.executable, str(ROOT / "bin" / "honcho-start"), "-f", str(tmp_path / "Procfile")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        if stop_after is not None:
            time.sleep(stop_after)
            os.killpg(honcho.pid, signal.SIGINT)
        out, _ = honcho.communicate(timeout=30)
        return honcho.returncode, out.decode()
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait(timeout=5)


def test_honcho_start_ends_a_clean_ctrl_c_with_status_0(tmp_path):
    code, out = run_honcho_start(tmp_path, "one: exec sleep 60\ntwo: exec sleep 60\n", stop_after=2)
    assert code == 0, out  # honcho itself says 130, and make would print "Error 130"
    assert "SIGINT received" in out and "SIGKILL" not in out


def test_honcho_start_keeps_a_failing_process_status(tmp_path):
    code, out = run_honcho_start(tmp_path, "one: exec sleep 60\nfailing: sleep 1; exit 3\n", stop_after=None)
    assert code == 3, out


def test_honcho_start_waits_longer_than_honchos_five_seconds():
    module = runpy.run_path(str(ROOT / "bin" / "honcho-start"))
    supervise = runpy.run_path(str(ROOT / "bin" / "supervise"))
    assert module["STOP_WAIT_SECONDS"] > supervise["STOP_GRACE_SECONDS"] > 5
