"""Hosts for workers: network namespaces, each linked to this one by a veth pair.

Host ``n`` is the namespace on 10.<net>.<n>.2, the end of its link in this namespace
10.<net>.<n>.1: a server listening there is reached from that host only through the link,
which ``cut()`` takes down and ``mend()`` brings back, as a switch port would.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.pgservers import unavailable

# One /16 per test process, so that two runs on one machine do not share addresses.
NET = 200 + os.getpid() % 50


def require_namespaces() -> None:
    if os.getuid() != 0 or shutil.which("ip") is None:
        unavailable(
            "needs root and iproute2 (ip netns) to give workers hosts of their own"
        )


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ip", *args], check=check, capture_output=True, text=True, timeout=30
    )


class Host:
    """A network namespace with one veth link to this namespace."""

    def __init__(self, number: int) -> None:
        tag = f"{os.getpid() % 100000}{number}"
        self.number = number
        self.name = f"dpq-h{tag}"
        self.outer = f"dpqo{tag}"[:15]  # this namespace's end of the link
        self.inner = f"dpqi{tag}"[:15]
        self.server_address = f"10.{NET}.{number}.1"
        self.address = f"10.{NET}.{number}.2"

    @property
    def exec_prefix(self) -> tuple[str, ...]:
        """What runs a command on this host (``ip netns exec`` execs it: same pid)."""
        return ("ip", "netns", "exec", self.name)

    def create(self) -> None:
        ip("netns", "add", self.name)
        ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        ip("link", "set", self.inner, "netns", self.name)
        ip("addr", "add", f"{self.server_address}/24", "dev", self.outer)
        ip("link", "set", self.outer, "up")
        ip("-n", self.name, "addr", "add", f"{self.address}/24", "dev", self.inner)
        ip("-n", self.name, "link", "set", self.inner, "up")
        ip("-n", self.name, "link", "set", "lo", "up")

    def cut(self) -> None:
        ip("link", "set", self.outer, "down")

    def mend(self) -> None:
        ip("link", "set", self.outer, "up")

    def delete(self) -> None:
        ip("netns", "del", self.name, check=False)  # takes the veth pair with it
        ip("link", "del", self.outer, check=False)


class Hosts:
    """The hosts of one test, deleted at teardown."""

    def __init__(self) -> None:
        require_namespaces()
        self.hosts: list[Host] = []

    def new(self) -> Host:
        host = Host(len(self.hosts) + 1)
        self.hosts.append(host)
        host.create()
        return host

    def close(self) -> None:
        for host in self.hosts:
            host.delete()
