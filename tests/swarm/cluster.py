"""A real Docker Swarm on this machine: one manager and two workers, each its own
`dockerd` in its own network namespace, on a bridge of this run's own.

Built for the tests (tests/swarm/conftest.py) and usable by hand
(`python -m tests.swarm.cluster up|down|sweep`). Everything it makes is named after a
run id (netns `bsw-<run>-<node>`, bridge `bsw<run>`, veths `bsw<run>h<i>`, state under
/tmp/bsw-<run>) and written down in the state folder's `manifest.json` before it is made,
so teardown, an `atexit` hook, a signal, or the next run's sweep (for a run whose owner
process is dead) removes exactly that: dockerds and whatever still runs in the
namespaces, mounts under the state folder, the namespaces, veths, bridge, iptables rule.

The traps of this machine (shared/DESIGN.md): dockerd is started with
`nsenter --net=...` (not `ip netns exec`, which remounts /sys and hides the cgroup
mounts), in a UTS namespace of its own so each node has its own hostname. No IPVS: the
ingress routing mesh does not work here. The nodes reach the host's loopback services
(Berth's registry, its token service) through `forward_loopback(port)`: a listener on
127.0.0.1:PORT inside each namespace that relays to 127.0.0.1:PORT of the host, so image
references naming 127.0.0.1:PORT are the same on every node and on the host's engine.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

STATE_ROOT = Path("/tmp")
PREFIX = "bsw"
CLONE_NEWNET = 0x40000000
#: Where the subnet of a run is picked: a /24 of 10.250.0.0/16 not already routed here.
SUBNET_POOL = ipaddress.ip_network("10.250.0.0/16")


def run(*argv: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def _routed_networks() -> list[ipaddress.IPv4Network]:
    out = run("ip", "-4", "-o", "route", "show", "table", "all", check=False).stdout
    nets = []
    for line in out.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast"):
            word = line.split()[1]
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.ip_network(word, strict=False))
    return nets


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 of SUBNET_POOL that no route here overlaps (docker0, engine bridges, another
    run's bridge): random, so two runs starting together rarely pick the same one."""
    taken = _routed_networks()
    candidates = list(SUBNET_POOL.subnets(new_prefix=24))
    random.shuffle(candidates)
    for net in candidates:
        if not any(net.overlaps(t) for t in taken if t.prefixlen > 0):
            return net
    raise RuntimeError(f"no free /24 in {SUBNET_POOL}")


@dataclass
class Node:
    """One dockerd of the swarm, in its own network namespace."""

    name: str  # manager, worker1, worker2
    index: int
    netns: str
    address: str
    host_veth: str
    state: Path
    pid: int | None = None
    node_id: str = ""

    @property
    def socket(self) -> Path:
        return self.state / "docker.sock"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    @property
    def netns_path(self) -> str:
        return f"/var/run/netns/{self.netns}"

    @property
    def hostname(self) -> str:
        return self.netns

    @property
    def log(self) -> Path:
        return self.state / "dockerd.log"

    def docker(self, *args: str, check: bool = True, timeout: float = 120, env=None) -> str:
        """The stock docker CLI against this node's engine."""
        done = run("docker", "-H", self.endpoint, *args, check=check, timeout=timeout, env=env)
        return done.stdout.strip()


@dataclass
class Cluster:
    """A 3-node swarm; `up()` builds it, `down()` removes everything it made."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    workers: int = 2
    nodes: list[Node] = field(default_factory=list)
    subnet: ipaddress.IPv4Network | None = None
    up_seconds: float = 0.0
    down_seconds: float = 0.0
    _forwards: list[_Forward] = field(default_factory=list)
    _down: bool = False

    @property
    def state(self) -> Path:
        return STATE_ROOT / f"{PREFIX}-{self.run_id}"

    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.run_id}"  # 9 characters, under Linux's 15

    @property
    def gateway(self) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def worker_nodes(self) -> list[Node]:
        return self.nodes[1:]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    # --- the manifest: what exists, for any later cleanup ------------------------------

    def _manifest(self) -> dict:
        return {
            "run_id": self.run_id,
            "owner_pid": os.getpid(),
            "bridge": self.bridge,
            "subnet": str(self.subnet),
            "nodes": [
                {"netns": n.netns, "veth": n.host_veth, "state": str(n.state), "pid": n.pid}
                for n in self.nodes
            ],
        }

    def _save(self) -> None:
        path = self.state / "manifest.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._manifest()))
        tmp.replace(path)

    # --- building -------------------------------------------------------------------

    def up(self) -> Cluster:
        """Build the swarm; on any failure everything made so far is removed."""
        started = time.monotonic()
        _install_exit_hooks(self)
        try:
            self._build()
        except BaseException:
            self.down()
            raise
        self.up_seconds = time.monotonic() - started
        return self

    def _build(self) -> None:
        self.state.mkdir(mode=0o700)
        self.subnet = _free_subnet()
        hosts = list(self.subnet.hosts())
        names = ["manager"] + [f"worker{i}" for i in range(1, self.workers + 1)]
        for index, name in enumerate(names):
            self.nodes.append(
                Node(
                    name=name,
                    index=index,
                    netns=f"{PREFIX}-{self.run_id}-{name}",
                    address=str(hosts[index + 1]),
                    host_veth=f"{PREFIX}{self.run_id}h{index}",
                    state=self.state / name,
                )
            )
        self._save()
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        # Docker's FORWARD policy is DROP and bridged frames pass iptables (br_netfilter):
        # let the nodes talk to each other across this bridge.
        run(*self._iptables_rule("-I"))
        for node in self.nodes:
            self._make_namespace(node)
        for node in self.nodes:
            self.start_engine(node, wait=False)
        for node in self.nodes:
            self.wait_engine(node)
        manager = self.manager
        manager.docker(
            "swarm", "init", "--advertise-addr", manager.address,
            "--listen-addr", f"{manager.address}:2377",
        )  # fmt: skip
        token = manager.docker("swarm", "join-token", "-q", "worker")
        for node in self.worker_nodes:
            node.docker(
                "swarm", "join", "--token", token, "--advertise-addr", node.address,
                "--listen-addr", f"{node.address}:2377", f"{manager.address}:2377",
            )  # fmt: skip
        for node in self.nodes:
            node.node_id = node.docker("info", "--format", "{{.Swarm.NodeID}}")
        self.wait_ready(*self.nodes)

    def _iptables_rule(self, op: str) -> list[str]:
        return [
            "iptables", op, "FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT",
            "-m", "comment", "--comment", f"berth swarm test {self.run_id}",
        ]  # fmt: skip

    def _make_namespace(self, node: Node) -> None:
        node.state.mkdir(mode=0o700)
        run("ip", "netns", "add", node.netns)
        peer = f"{PREFIX}{self.run_id}p{node.index}"
        run("ip", "link", "add", node.host_veth, "type", "veth", "peer", "name", peer)
        run("ip", "link", "set", node.host_veth, "master", self.bridge, "up")
        run("ip", "link", "set", peer, "netns", node.netns)
        ns = ("ip", "-n", node.netns)
        run(*ns, "link", "set", peer, "name", "eth0")
        run(*ns, "addr", "add", f"{node.address}/{self.subnet.prefixlen}", "dev", "eth0")
        run(*ns, "link", "set", "eth0", "up")
        run(*ns, "link", "set", "lo", "up")
        run(*ns, "route", "add", "default", "via", self.gateway)

    def _dockerd_argv(self, node: Node) -> list[str]:
        s = node.state
        return [
            "nsenter", f"--net={node.netns_path}",
            "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', node.hostname,
            "dockerd",
            "-H", node.endpoint,
            "--data-root", str(s / "data"),
            "--exec-root", str(s / "exec"),
            "--pidfile", str(s / "docker.pid"),
            "--log-level", "warn",
            # the nodes' own pools, away from the host's engines (different namespaces
            # anyway; this keeps `ip route` on a node readable)
            "--default-address-pool", "base=10.249.0.0/16,size=24",
        ]  # fmt: skip

    def start_engine(self, node: Node, wait: bool = True) -> None:
        """Start (or restart) a node's dockerd; `wait` until its socket answers.

        A killed dockerd leaves its pid file, and dockerd refuses to start while the pid
        written there names a live process: with pid_max 32768 and thousands of
        processes here, another process soon has that pid. The node's own dockerd being
        gone (`kill_engine` waited for it), the file is stale and removed."""
        if _engine_gone(node):
            (node.state / "docker.pid").unlink(missing_ok=True)
        log = node.log.open("ab")
        proc = subprocess.Popen(
            self._dockerd_argv(node),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal is for pytest, not for it
        )
        log.close()
        node.pid = proc.pid  # nsenter, unshare and sh exec: this is dockerd's pid
        _children[proc.pid] = proc
        self._save()
        if wait:
            self.wait_engine(node)

    def wait_engine(self, node: Node, timeout: float = 60) -> None:
        """Until the node's engine answers `docker version`. A restarted engine may take
        longer than one call's 10 s to answer on a loaded machine (it restores its
        containers first): a call that times out is another try, not a failure."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.socket.exists() and _answers(node):
                return
            if node.pid and not _alive(node.pid):
                break
            time.sleep(0.2)
        tail = node.log.read_text(errors="replace")[-2000:] if node.log.exists() else ""
        raise RuntimeError(f"dockerd of {node.name} did not come up:\n{tail}")

    def kill_engine(self, node: Node) -> None:
        """SIGKILL a node's dockerd (and its containerd): the node is lost to the swarm.
        Its containers' shims survive until `start_engine` brings dockerd back."""
        if node.pid and _alive(node.pid):
            for pid in _children_of(node.pid):
                _kill(pid, signal.SIGKILL)
            _kill(node.pid, signal.SIGKILL)
            _reap(node.pid, 60)
            if not _engine_gone(node):
                raise RuntimeError(f"dockerd of {node.name} ({node.pid}) outlived SIGKILL")

    def node_state(self, node: Node) -> tuple[str, str]:
        """(state, availability) of a node as the manager sees it."""
        out = self.manager.docker(
            "node", "inspect", node.node_id, "--format", "{{.Status.State}} {{.Spec.Availability}}"
        )
        state, availability = out.split()
        return state, availability

    def wait_ready(self, *nodes: Node, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.node_state(n)[0] == "ready" for n in nodes):
                return
            time.sleep(0.3)
        raise RuntimeError(f"nodes not ready after {timeout}s: {[n.name for n in nodes]}")

    def forward_loopback(self, port: int) -> None:
        """Make 127.0.0.1:PORT inside every node's namespace reach 127.0.0.1:PORT here."""
        for node in self.nodes:
            self._forwards.append(_Forward(node.netns_path, port).start())

    # --- teardown ----------------------------------------------------------------------

    def down(self) -> None:
        """Remove everything this cluster made; safe to call twice and after a half-build."""
        if self._down:
            return
        self._down = True
        started = time.monotonic()
        for forward in self._forwards:
            forward.stop()
        for node in reversed(self.nodes):
            if node.pid and _alive(node.pid) and node.socket.exists():
                run("docker", "-H", node.endpoint, "swarm", "leave", "--force",
                    check=False, timeout=15)  # fmt: skip
        if self.state.exists():
            self._save()
        cleanup(self.state)
        self.down_seconds = time.monotonic() - started


def _engine_gone(node: Node) -> bool:
    """The node's last dockerd has exited (asked of its Popen when this process started
    it: a bare pid may already be another process's)."""
    proc = _children.get(node.pid) if node.pid else None
    if proc is not None:
        return proc.poll() is not None
    return not (node.pid and _alive(node.pid))


def _answers(node: Node) -> bool:
    try:
        done = run("docker", "-H", node.endpoint, "version", check=False, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


# --- cleanup from a manifest (this run's, or a dead run's) -------------------------------

_children: dict[int, subprocess.Popen] = {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].startswith("Z"):
            _reap(pid, 0)
            return False
    return True


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _reap(pid: int, timeout: float) -> None:
    proc = _children.get(pid)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
                if int(stat[1]) == pid:
                    found.append(int(entry.name))
    return found


def _pids_in_netns(netns_path: str) -> list[int]:
    """Every process whose network namespace is this one (dockerd, containerd, shims,
    containers): what must end before the namespace can go."""
    try:
        target = os.stat(netns_path).st_ino
    except OSError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if os.stat(entry / "ns" / "net").st_ino == target:
                    found.append(int(entry.name))
    return found


def _mounts_under(root: Path) -> list[str]:
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].encode().decode("unicode_escape")
            if point == str(root) or point.startswith(f"{root}/"):
                found.append(point)
    return found


def cleanup(state: Path) -> None:
    """Remove what the manifest in `state` names: engines (TERM, then KILL), every
    process left in the namespaces, mounts under `state`, namespaces, veths, bridge and
    iptables rule, then `state` itself. Idempotent; each step goes on after a failure."""
    try:
        manifest = json.loads((state / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = None
    if manifest:
        nodes = manifest["nodes"]
        for node in nodes:
            if node.get("pid"):
                _kill(node["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 20
        for node in nodes:
            if node.get("pid"):
                _reap(node["pid"], max(0.0, deadline - time.monotonic()))
        for node in nodes:
            path = f"/var/run/netns/{node['netns']}"
            for _ in range(3):
                pids = _pids_in_netns(path)
                if not pids:
                    break
                for pid in pids:
                    _kill(pid, signal.SIGKILL)
                for pid in pids:
                    _reap(pid, 5)
    for point in sorted(_mounts_under(state), key=len, reverse=True):
        run("umount", "-l", point, check=False)
    if manifest:
        for node in manifest["nodes"]:
            run("ip", "netns", "delete", node["netns"], check=False)
            run("ip", "link", "delete", node["veth"], check=False)
        run("ip", "link", "delete", manifest["bridge"], check=False)
        cluster = Cluster(run_id=manifest["run_id"])
        while run(*cluster._iptables_rule("-D"), check=False).returncode == 0:
            pass
    shutil.rmtree(state, ignore_errors=True)


def sweep() -> list[str]:
    """Clean up the clusters of earlier runs whose owner process is gone (a SIGKILLed
    pytest): only those, so a run beside this one keeps its swarm."""
    swept = []
    for state in STATE_ROOT.glob(f"{PREFIX}-*"):
        try:
            owner = json.loads((state / "manifest.json").read_text())["owner_pid"]
        except (OSError, ValueError, KeyError):
            continue
        if not _alive(owner):
            cleanup(state)
            swept.append(state.name)
    return swept


def leftovers(run_id: str) -> list[str]:
    """What of run `run_id` is still here (for the tests' leftover check)."""
    found = []
    for line in run("ip", "netns", "list", check=False).stdout.splitlines():
        if f"{PREFIX}-{run_id}-" in line:
            found.append(f"netns {line.split()[0]}")
    for line in run("ip", "-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(f"{PREFIX}{run_id}"):
            found.append(f"link {name}")
    if (STATE_ROOT / f"{PREFIX}-{run_id}").exists():
        found.append(f"state {STATE_ROOT / f'{PREFIX}-{run_id}'}")
    if run_id in run("iptables", "-S", "FORWARD", check=False).stdout:
        found.append("iptables rule")
    return found


_hooked: list[Cluster] = []


def _install_exit_hooks(cluster: Cluster) -> None:
    """Tear the cluster down at interpreter exit and on SIGTERM/SIGHUP too (pytest turns
    Ctrl-C into KeyboardInterrupt and runs the fixture's finally itself)."""
    _hooked.append(cluster)
    if len(_hooked) > 1:
        return
    atexit.register(lambda: [c.down() for c in _hooked])
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)
        if previous in (signal.SIG_DFL, None):

            def handler(signum, frame):
                for c in _hooked:
                    c.down()
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

            with contextlib.suppress(ValueError):  # not in the main thread
                signal.signal(sig, handler)


# --- loopback relay into a namespace -----------------------------------------------------

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class _Forward:
    """127.0.0.1:PORT in a namespace relayed to 127.0.0.1:PORT of this process's own.

    The listening socket is made by a thread that enters the namespace (setns applies
    to the calling thread only) and comes back; a socket keeps the namespace it was
    made in, so the relay threads then connect out in the host's namespace.
    """

    def __init__(self, netns_path: str, port: int) -> None:
        self.netns_path = netns_path
        self.port = port
        self.listener: socket.socket | None = None
        self.stopped = threading.Event()

    def start(self) -> _Forward:
        made: list[BaseException | socket.socket] = []

        def make() -> None:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            target = os.open(self.netns_path, os.O_RDONLY)
            try:
                _setns(target)
                try:
                    sock = socket.socket()
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(("127.0.0.1", self.port))
                    sock.listen(64)
                    made.append(sock)
                finally:
                    _setns(own)
            except BaseException as exc:
                made.append(exc)
            finally:
                os.close(own)
                os.close(target)

        maker = threading.Thread(target=make)
        maker.start()
        maker.join()
        if isinstance(made[0], BaseException):
            raise made[0]
        self.listener = made[0]
        threading.Thread(target=self._accept, daemon=True, name=f"fwd-{self.port}").start()
        return self

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                inner, _ = self.listener.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                outer.settimeout(None)
            except OSError:
                inner.close()
                continue
            for a, b in ((inner, outer), (outer, inner)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            source.close()


if __name__ == "__main__":  # pragma: no cover - by hand
    action = sys.argv[1] if len(sys.argv) > 1 else "up"
    if action == "sweep":
        print("swept:", sweep())
    elif action == "up":
        c = Cluster().up()
        print(f"up in {c.up_seconds:.1f}s: {[(n.name, n.address) for n in c.nodes]}")
        print(c.manager.docker("node", "ls"))
        c.down()
        print(f"down in {c.down_seconds:.1f}s; leftovers: {leftovers(c.run_id)}")
