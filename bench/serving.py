"""What the benchmarks share: a free loopback port and the production server serving the project."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKERS = os.cpu_count() or 1  # as README's Deployment says
THREADS = 3  # per worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
def asgi_server(port: int, *, workers: int = 1, log: Path | None = None) -> Iterator[subprocess.Popen]:
    """uvicorn serving destiny_mail.asgi on 127.0.0.1:port until the block ends, once /login/ answers 200."""
    command = [sys.executable, "-m", "uvicorn", "destiny_mail.asgi:application", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    with _serving("uvicorn", command, port, log) as process:
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
