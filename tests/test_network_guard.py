"""The suite stays on this machine: conftest's guard fails a test that resolves a name or
connects anywhere but loopback, and tests marked `network` run only when asked for.

Each case runs pytest in a child on a small test file, with this suite's conftest as a
plugin. Under the guard sits a tripwire, loaded first: it stands in for the real socket
calls, so a call the guard lets through is recorded and refused there, and nothing is
ever sent off the machine, with or without the guard.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

HINT = (
    "tests may only use localhost and loopback addresses; a test that needs the internet is "
    "marked `network` and runs with RAG_TEST_NETWORK=1 or -m network"
)

TESTS = Path(__file__).resolve().parent

TRIPWIRE = """
import ipaddress, os, socket

LOG = os.environ["TRIPWIRE_LOG"]
real = {n: getattr(socket, n) for n in ("getaddrinfo", "gethostbyname")}
real_connect = socket.socket.connect


def reached(what):
    with open(LOG, "a") as log:
        log.write(what + "\\n")
    return OSError(f"tripwire: {what} reached the system")


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    if host in (None, "localhost"):
        return real["getaddrinfo"](host, port, family, type, proto, flags)
    try:  # an address literal: answered without asking anyone
        return real["getaddrinfo"](host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
    except socket.gaierror:
        raise reached(f"getaddrinfo {host}") from None


def gethostbyname(host):
    raise reached(f"gethostbyname {host}")


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise reached(f"connect {address}")
    return real_connect(self, address)


def sendto(self, data, *args):
    raise reached(f"sendto {args[-1]}")


socket.getaddrinfo, socket.gethostbyname = getaddrinfo, gethostbyname
socket.socket.connect, socket.socket.sendto = connect, sendto
"""

INNER_TESTS = """
import socket

import pytest


def test_connects_off_the_machine():
    with socket.socket() as sock:
        sock.connect(("192.0.2.1", 9))


def test_resolves_a_name():
    socket.getaddrinfo("example.com", 80)


def test_swallows_the_refusal():
    try:
        socket.create_connection(("example.com", 80), timeout=1)
    except OSError:
        pass  # as code that falls back when offline does: the test still fails


def test_sends_a_datagram_off_the_machine():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"x", ("192.0.2.1", 53))


def test_stays_on_loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        socket.create_connection(("localhost", port), timeout=5).close()
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


@pytest.mark.network
def test_needs_the_internet():
    with pytest.raises(OSError, match="tripwire"):  # the guard let it through
        socket.getaddrinfo("example.com", 80)
"""


def run_inner(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[dict[str, str], str]:
    """pytest in a child on INNER_TESTS with the tripwire and this suite's conftest;
    returns each test's outcome (`passed`, or `failed: message`, `skipped: reason`) and
    what reached the tripwire."""
    (tmp_path / "tripwire.py").write_text(TRIPWIRE)
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    network: needs the internet\n")
    log, results = tmp_path / "reached.log", tmp_path / "results.xml"
    log.write_text("")
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    child_env.update(env or {})
    child_env["TRIPWIRE_LOG"] = str(log)
    child_env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(TESTS), str(TESTS.parent)])
    command = [sys.executable, "-m", "pytest", "-p", "tripwire", "-p", "conftest"]
    command += ["-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini")]
    command += [f"--junitxml={results}", *args, "test_inner.py"]
    run = subprocess.run(
        command, cwd=tmp_path, env=child_env, capture_output=True, text=True, timeout=120
    )
    assert results.is_file(), run.stdout + run.stderr
    outcomes = {}
    for case in ElementTree.parse(results).iter("testcase"):
        found = [
            (c.tag, c.get("message", "")) for c in case if c.tag in ("failure", "error", "skipped")
        ]
        outcomes[case.get("name", "")] = f"{found[0][0]}: {found[0][1]}" if found else "passed"
    return outcomes, log.read_text()


SKIPPED = "skipped: needs the internet: run with RAG_TEST_NETWORK=1 or -m network"


def refused(what: str) -> str:
    return f"failure: Failed: network guard: {what}; {HINT}"


def test_off_machine_calls_fail_the_test_before_reaching_the_system(tmp_path: Path) -> None:
    outcomes, reached = run_inner(tmp_path)
    assert reached == "", f"calls got past the guard:\n{reached}"
    assert outcomes == {
        "test_connects_off_the_machine": refused("connect to ('192.0.2.1', 9)"),
        "test_resolves_a_name": refused("getaddrinfo('example.com')"),
        "test_swallows_the_refusal": refused("getaddrinfo('example.com')"),
        "test_sends_a_datagram_off_the_machine": refused("sendto to ('192.0.2.1', 53)"),
        "test_stays_on_loopback": "passed",
        "test_needs_the_internet": SKIPPED,
    }


def test_network_tests_are_skipped_unless_asked_for_and_nothing_probes(tmp_path: Path) -> None:
    outcomes, reached = run_inner(tmp_path, "-k", "needs_the_internet")
    assert reached == "", f"something probed the internet:\n{reached}"
    assert outcomes == {"test_needs_the_internet": SKIPPED}


@pytest.mark.parametrize(
    ("args", "env"),
    [(["-k", "needs_the_internet"], {"RAG_TEST_NETWORK": "1"}), (["-m", "network"], {})],
)
def test_network_tests_run_unguarded_when_asked_for(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    outcomes, reached = run_inner(tmp_path, *args, env=env)
    assert outcomes == {"test_needs_the_internet": "passed"}
    assert reached == "getaddrinfo example.com\n"  # the tripwire, standing in for DNS
