"""What the benchmarks share: a free loopback port and the production server serving the project."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKERS = os.cpu_count() or 1  # as README's Deployment says
THREADS = 3  # per worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TICK = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """The pid and its descendants (gunicorn's master and its worker processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with suppress(OSError):
            todo += [int(child) for child in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
    return found


def process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by the processes (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def _serves_login(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"GET /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@contextmanager
def production_server(port: int, *, workers: int = WORKERS, log: Path | None = None) -> Iterator[subprocess.Popen]:
    """gunicorn serving destiny_mail.wsgi on 127.0.0.1:port as README's Deployment says, once /login/ answers 200."""
    command = [sys.executable, "-m", "gunicorn", "destiny_mail.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(workers), "--threads", str(THREADS), "--log-level", "warning"]
    with _serving("gunicorn", command, port, log) as process:
        yield process


@contextmanager
def _serving(name: str, command: list[str], port: int, log: Path | None) -> Iterator[subprocess.Popen]:
    """Run the server until the block ends. Its output goes to `log` (kept only when the block fails) or to this
    process's own."""
    output = log.open("wb") if log else None
    process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT if output else None)
    failed = False
    try:
        deadline = time.monotonic() + 60
        while not _serves_login(port):
            if process.poll() is not None:
                sys.exit(f"{name} exited with {process.returncode} before serving" + (f"; see {log}" if log else ""))
            if time.monotonic() > deadline:
                sys.exit(f"{name} did not serve /login/ within 60 s")
            time.sleep(0.1)
        yield process
    except BaseException:
        failed = True
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if output:
            output.close()
            if failed:
                print(f"{name}'s log is kept in {log}", file=sys.stderr)
            else:
                log.unlink(missing_ok=True)  # type: ignore[union-attr]
