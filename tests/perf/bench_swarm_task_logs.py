"""A Swarm task's log through the manager (`GET /tasks/{id}/logs`) against the same log
through its node's engine (`GET /containers/{id}/logs`): what the log collector may rely
on (apps/hosts/engine/swarm_logs.py) and what each way costs.

    .venv/bin/python tests/perf/bench_swarm_task_logs.py [--lines 200000]

Builds a 3-node swarm of its own (tests/swarm/cluster.py: dockerds in network namespaces,
needs root), loads the demo web image into the worker, and runs services pinned on it
(no Berth, no database). Prints, for both ways: whether they give the same (stream,
nanosecond timestamp, text) in the same order; how `since` and `until` are taken
(exact to the nanosecond? inclusive? ignored?); lines per second reading a task's whole
log of `--lines` lines; four tasks read at once through the manager; what a finished
task, a removed container and a down node answer. Everything is removed at the end
(the cluster's own teardown, also after a failure).
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.swarm.cluster import Cluster, Node  # noqa: E402

IMAGE = "berth-demo/web:1.0"
LOGS = {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": 0, "tail": "all"}


def frames(data: bytes) -> list[tuple[int, bytes]]:
    found, i = [], 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i + 4 : i + 8], "big")
        found.append((data[i], data[i + 8 : i + 8 + size]))
        i += 8 + size
    return found


def ns_of(ts: str) -> int:
    head, _, fraction = ts[:-1].partition(".")
    seconds = int(datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp())
    return seconds * 10**9 + int(fraction.ljust(9, "0")[:9] or 0)


def instant(ns: int) -> str:
    return f"{ns // 10**9}.{ns % 10**9:09d}"


class Engine:
    """The Engine API over a node's unix socket (plain http.client: no docker-py here)."""

    def __init__(self, node: Node) -> None:
        self.socket = str(node.socket)

    def get(self, path: str, params: dict) -> bytes:
        connection = http.client.HTTPConnection("localhost", timeout=300)
        connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.sock.connect(self.socket)
        try:
            connection.request("GET", f"/v1.41{path}?{urlencode(params)}")
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"{path}: {response.status} {body[:200]!r}")
            return body
        finally:
            connection.close()

    def tasks(self, service: str) -> list[dict]:
        filters = json.dumps({"service": [service]})
        return json.loads(self.get("/tasks", {"filters": filters}))


def read(api: Engine, path: str, **params: object) -> list[tuple[int, int, str]]:
    """(stream, ns, text) of every line; a stream-3 frame is printed and skipped."""
    lines = []
    for stream, payload in frames(api.get(path, {**LOGS, **params})):
        if stream == 3:
            print(f"    stream 3 (error) frame: {payload.decode().strip()[:160]}")
            continue
        for line in payload.decode().splitlines():
            ts, _, text = line.partition(" ")
            lines.append((stream, ns_of(ts), text))
    return lines


def service(manager: Node, name: str, worker: Node, script: str) -> None:
    subprocess.run(
        ["docker", "-H", manager.endpoint, "service", "create", "--detach", "--name", name,
         "--no-healthcheck", "--constraint", f"node.hostname=={worker.hostname}",
         "--entrypoint", "sh", IMAGE, "-c", script],
        check=True, capture_output=True,
    )  # fmt: skip


def running_task(api: Engine, name: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [t for t in api.tasks(name) if t["Status"]["State"] == "running"]
        if found:
            return found[0]
        time.sleep(0.3)
    raise RuntimeError(f"service {name} has no running task")


def exactness(manager: Engine, node: Engine, task: dict) -> None:
    tid, cid = task["ID"], task["Status"]["ContainerStatus"]["ContainerID"]
    through_node = read(node, f"/containers/{cid}/logs")
    through_manager = read(manager, f"/tasks/{tid}/logs")
    n = min(len(through_node), len(through_manager))
    same = through_node[:n] == through_manager[:n]
    print(f"same lines, order and timestamps (first {n}): {same}")
    inversions = sum(1 for a, b in zip(through_node, through_node[1:], strict=False) if b[1] < a[1])
    print(f"timestamp inversions in file order (stdout/stderr): {inversions} of {n}")
    middle = through_node[len(through_node) // 2][1]
    for delta in (-1, 0, 1):
        since = instant(middle + delta)
        first_m = min(x[1] for x in read(manager, f"/tasks/{tid}/logs", since=since))
        first_n = min(x[1] for x in read(node, f"/containers/{cid}/logs", since=since))
        print(
            f"since=line{delta:+d} ns: earliest line at since{first_m - middle - delta:+d} ns "
            f"(manager), since{first_n - middle - delta:+d} ns (node)"
        )
    until = instant(middle)
    last_m = max(x[1] for x in read(manager, f"/tasks/{tid}/logs", until=until))
    last_n = max(x[1] for x in read(node, f"/containers/{cid}/logs", until=until))
    print(
        f"until: latest line at until{last_m - middle:+d} ns (manager), "
        f"until{last_n - middle:+d} ns (node)"
    )


def throughput(manager: Engine, node: Engine, tasks: list[dict], lines: int):
    tid, cid = tasks[0]["ID"], tasks[0]["Status"]["ContainerStatus"]["ContainerID"]
    for label, api, path in (
        ("manager", manager, f"/tasks/{tid}/logs"),
        ("node", node, f"/containers/{cid}/logs"),
    ):
        for _ in range(2):
            started = time.monotonic()
            got = read(api, path)
            seconds = time.monotonic() - started
            complete = [int(x[2].split()[1]) for x in got] == list(range(1, lines + 1))
            rate = len(got) / seconds
            print(f"{label}: {len(got)} lines, {seconds:.2f}s ({rate:,.0f}/s), all: {complete}")

    def one(task: dict) -> int:
        return len(read(manager, f"/tasks/{task['ID']}/logs"))

    started = time.monotonic()
    with ThreadPoolExecutor(len(tasks)) as pool:
        total = sum(pool.map(one, tasks))
    print(
        f"manager, {len(tasks)} tasks at once: {total} lines in {time.monotonic() - started:.2f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    cluster = Cluster().up()
    try:
        worker = cluster.worker_nodes[0]
        subprocess.run(
            f"docker save {IMAGE} | docker -H {worker.endpoint} load",
            shell=True, check=True, capture_output=True,
        )  # fmt: skip
        manager, node = Engine(cluster.manager), Engine(worker)
        mixed = (
            "i=0; while true; do i=$((i+1)); echo OUT $i; echo ERR $i >&2; "
            "if [ $((i % 50)) = 0 ]; then sleep 0.2; fi; done"
        )
        service(cluster.manager, "mixed", worker, mixed)
        flood = 'i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo "LINE $i {pad}"; done; sleep 1000'
        pad = "some padding text to make it a realistic log line of eighty chars"
        for k in range(4):
            n = args.lines if k == 0 else args.lines // 4
            service(cluster.manager, f"flood{k}", worker, flood.format(n=n, pad=pad))
        task = running_task(manager, "mixed")
        time.sleep(4)
        exactness(manager, node, task)
        floods = [running_task(manager, f"flood{k}") for k in range(4)]
        cid = floods[0]["Status"]["ContainerStatus"]["ContainerID"]
        while not read(node, f"/containers/{cid}/logs", tail="1")[-1][2].startswith(
            f"LINE {args.lines} "
        ):
            time.sleep(1)
        throughput(manager, node, floods, args.lines)
        gone = floods[1]
        subprocess.run(["docker", "-H", worker.endpoint, "rm", "-f",
                        gone["Status"]["ContainerStatus"]["ContainerID"]],
                       check=True, capture_output=True)  # fmt: skip
        after = read(manager, f"/tasks/{gone['ID']}/logs")
        print(f"container removed: the manager answers {len(after)} lines")
        cluster.kill_engine(worker)
        started = time.monotonic()
        left = read(manager, f"/tasks/{task['ID']}/logs", tail="5")
        print(f"node down: {len(left)} lines in {time.monotonic() - started:.2f}s")
    finally:
        cluster.down()


if __name__ == "__main__":
    main()
