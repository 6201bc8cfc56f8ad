"""Hosts on one machine: Linux network namespaces joined by a bridge (iproute2,
veth pairs), for tests that cut a host off the network.

The root namespace plays the services' host: PostgreSQL, Redis, RabbitMQ and
SeaweedFS listen on its loopback, so `Network` forwards each needed port from
the bridge address to loopback (socat), and a namespace's processes reach the
services at `Network.gateway`. `cut(host)` takes the host's link down: its
packets are dropped, nothing is reset, as when a machine or its switch port
dies. Everything made is removed by `close()` (processes by their pids).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass, field


class NamespacesRefused(Exception):
    """The machine does not allow network namespaces (no root, no iproute2, ...)."""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Network:
    """A bridge on a /24 of its own, and the hosts (namespaces) attached to it."""

    subnet: int  # the third octet of 10.231.<subnet>.0/24
    bridge: str
    hosts: dict[str, str] = field(default_factory=dict)  # host -> its veth in the root ns
    forwarders: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def create(cls) -> Network:
        """A bridge with the gateway address; NamespacesRefused when the machine refuses."""
        if shutil.which("ip") is None or shutil.which("socat") is None:
            raise NamespacesRefused("iproute2 (ip) and socat are needed")
        tag = secrets.token_hex(2)
        network = cls(subnet=20 + secrets.randbelow(200), bridge=f"avtbr{tag}")
        try:
            _ip("link", "add", network.bridge, "type", "bridge")
        except (subprocess.CalledProcessError, OSError) as exc:
            stderr = getattr(exc, "stderr", b"") or b""
            raise NamespacesRefused(f"ip link add: {stderr.decode().strip() or exc}") from exc
        _ip("addr", "add", f"{network.gateway}/24", "dev", network.bridge)
        _ip("link", "set", network.bridge, "up")
        return network

    @property
    def gateway(self) -> str:
        """The services' address as the hosts see it."""
        return f"10.231.{self.subnet}.1"

    def add_host(self, name: str) -> str:
        """A namespace `<bridge>-<name>` on the bridge; its name, for `ip netns exec`."""
        netns = f"{self.bridge}-{name}"
        index = len(self.hosts) + 2
        outside, inside = f"{self.bridge}{name}o"[:15], f"{self.bridge}{name}i"[:15]
        _ip("netns", "add", netns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", netns)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        _ip("-n", netns, "addr", "add", f"10.231.{self.subnet}.{index}/24", "dev", inside)
        _ip("-n", netns, "link", "set", inside, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        self.hosts[netns] = outside
        return netns

    def forward(self, port: int) -> None:
        """Make the service on loopback port `port` reachable at gateway:`port`."""
        self.forwarders.append(
            subprocess.Popen(
                [
                    "socat",
                    f"TCP-LISTEN:{port},bind={self.gateway},fork,reuseaddr",
                    f"TCP:127.0.0.1:{port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def cut(self, netns: str) -> None:
        """Take the host's link down: every packet to or from it is dropped."""
        _ip("link", "set", self.hosts[netns], "down")

    def close(self) -> None:
        """Stop the forwarders (and their connection children), delete every host and
        the bridge. The caller stops the processes it ran in the hosts first."""
        for forwarder in self.forwarders:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(forwarder.pid, signal.SIGKILL)
            forwarder.wait(timeout=10)
        for netns, outside in self.hosts.items():
            subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=30)
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)
