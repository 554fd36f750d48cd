"""A real PostgreSQL server with pgvector on 127.0.0.1, for tests and benchmarks.

The binaries come from the `pgserver` wheel (PostgreSQL 16 and pgvector, built for pip),
which the dev extra installs. PostgreSQL refuses to run as root, so when the tests run
as root the binaries are copied where an unprivileged user can read them and the server
runs as `nobody`. It listens on a free TCP port on loopback only, with fsync off.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from web_servers import free_port


def _binaries(work: Path) -> Path:
    spec = importlib.util.find_spec("pgserver")  # found, not imported: its import is noisy
    if spec is None or spec.origin is None:
        raise RuntimeError("the pgserver wheel is not installed (pip install -e '.[dev]')")
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"  # beside ../pgserver.libs
    if os.geteuid() != 0:
        return bin_dir
    site = bin_dir.parent.parent.parent  # .../site-packages
    copy = work / "pg"
    shutil.copytree(
        bin_dir.parent,
        copy / "pgserver" / "pginstall",
        symlinks=True,
        ignore=shutil.ignore_patterns("include"),
    )
    shutil.copytree(site / "pgserver.libs", copy / "pgserver.libs")
    for folder, _, _ in os.walk(work):
        os.chmod(folder, 0o755)
    return copy / "pgserver" / "pginstall" / "bin"


@contextlib.contextmanager
def postgres_server(timeout: float = 30.0) -> Iterator[str]:
    """Start a throwaway server; yield its URL; stop it and delete its data."""
    work = Path(tempfile.mkdtemp(prefix="rag-pg-"))
    user = "nobody" if os.geteuid() == 0 else None
    try:
        bin_dir = _binaries(work)
        data = work / "data"
        data.mkdir()
        if user:
            entry = pwd.getpwnam(user)
            os.chown(data, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync"],
            user=user, check=True, capture_output=True, timeout=timeout,
        )  # fmt: skip
        port = free_port()
        server = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
             "-k", str(data), "-c", "fsync=off", "-c", "max_connections=200"],
            user=user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        try:
            _wait_ready(url, server, timeout)
            yield url
        finally:
            server.send_signal(signal.SIGINT)  # fast shutdown: clients are disconnected
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _wait_ready(url: str, server: subprocess.Popen, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited with {server.returncode}")
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
