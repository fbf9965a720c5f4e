"""A Redis Sentinel group of real processes: a master, a replica and three sentinels, all
``redis-server`` (the sentinels in ``--sentinel`` mode), on free loopback ports.

For tests and the chaos suite: kill the master and the sentinels promote the replica;
start the old master again and they make it a replica of the new one.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.devstack.procs import free_port
from worker.devstack.redis_server import LocalRedis, _pings, find_redis_server, start_redis

MASTER_NAME = "headswap"


@dataclass
class SentinelGroup:
    nodes: list[LocalRedis]  # [master, replica] as started; roles change on failover
    sentinels: list[subprocess.Popen[bytes]]
    sentinel_ports: list[int]
    directory: Path
    master_name: str = MASTER_NAME
    killed: list[LocalRedis] = field(default_factory=list)

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"sentinel://{hosts}/{db}?master={self.master_name}"

    def master_port(self) -> int | None:
        """The master's port as the sentinels see it now."""
        import redis

        for port in self.sentinel_ports:
            try:
                client = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
                reply = client.execute_command(  # type: ignore[no-untyped-call]
                    "SENTINEL", "get-master-addr-by-name", self.master_name)
                client.close()
                return int(reply[1])
            except Exception:  # noqa: S112 (a sentinel that cannot answer: ask the next)
                continue
        return None

    def kill_master(self) -> int:
        """kill -9 the current master; its port."""
        port = self.master_port()
        node = next(n for n in self.nodes if n.port == port)
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(10)
        self.killed.append(node)
        return node.port

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.master_port()
            if port is not None and port != old_port:
                return port
            time.sleep(0.2)
        raise TimeoutError(f"no failover away from {old_port} within {timeout}s")

    def restart_killed(self) -> None:
        """Start the killed nodes again on their ports and data: the sentinels turn each
        into a replica of the current master."""
        for node in self.killed:
            new = start_redis(node.port, appendonly=True, directory=node.directory)
            self.nodes[self.nodes.index(node)] = new
        self.killed.clear()

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        for node in self.nodes:
            node.stop()


def start_sentinel_group(*, down_after_ms: int = 1000) -> SentinelGroup:
    directory = Path(tempfile.mkdtemp(prefix="headswap-sentinel-"))
    master = start_redis(appendonly=True, directory=directory / "master")
    replica = start_redis(appendonly=True, directory=directory / "replica",
                          extra_args=["--replicaof", "127.0.0.1", str(master.port)])
    sentinels, ports = [], []
    for n in range(3):
        port = free_port()
        conf = directory / f"sentinel-{n}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n"
            f"sentinel failover-timeout {MASTER_NAME} 5000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        sentinels.append(subprocess.Popen([find_redis_server(), str(conf), "--sentinel"],
                                          stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))  # fmt: skip
        ports.append(port)
    group = SentinelGroup([master, replica], sentinels, ports, directory)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all(_pings(p) for p in ports) and _replica_synced(replica.port):
            return group
        time.sleep(0.1)
    group.stop()
    raise RuntimeError("the sentinel group did not come up within 20 s")


def _replica_synced(port: int) -> bool:
    import redis

    try:
        client = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
        info: Any = client.info("replication")
        client.close()
    except Exception:
        return False
    return bool(info.get("master_link_status") == "up")
