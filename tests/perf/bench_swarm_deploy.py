"""A guestbook-like stack on a real 3-node swarm: deployed through Berth against
`docker stack deploy` of the same rendered file, alternating; then a worker node lost,
until converged as Swarm sees it and as Berth sees it.

The benchmark builds its own swarm (tests/swarm/cluster.py: one manager, two workers,
each a dockerd in a network namespace of its own), its own docker-registry behind a real
daphne (the token service), publishes the demo images there, and removes all of it on
exit, Ctrl-C, SIGTERM or failure.

Deploy. Berth: `services.create_stack` then `reconciler.reconcile_stack` in this
process (what the Celery task runs; no queue or HTTP in the clock), until the stack is
`healthy` in the database (every service's tasks running: Swarm reports a task with a
health check as running once its check passes). `docker stack deploy
--with-registry-auth` of the same file (Berth's revision, interpolated, with
`endpoint_mode: dnsrr` added as Berth does: this kernel has no IPVS), until `docker
stack ps` shows every wanted task running, polled at `--poll`. Each round removes its
stack and waits until no container of it is left on any node. A warm-up of each side is
run first and not counted (the first pull of each image on each node).

Node loss. A Berth stack of `--loss-replicas` web tasks on the workers; one worker's
dockerd is SIGKILLed; then, in one loop, Swarm's view (`docker service ps` on the
manager: node down, every wanted task running on a ready node) and Berth's (a heartbeat
and a periodic pass back to back, as Celery beat would run them: SwarmNode down,
Container rows all running, the stack healthy) are checked; the first moment each holds
is recorded. The engine is started again and the stack removed after each round.

Run from the repo root (root: it makes network namespaces):
    .venv/bin/python tests/perf/bench_swarm_deploy.py [--rounds 5] [--loss-rounds 3]
Needs: dockerd, nsenter, PostgreSQL and Redis on 127.0.0.1, Debian's docker-registry
and haproxy, the demo images (deploy/build-images.sh).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.perf import _setup as bench  # noqa: E402
from tests.perf._setup import say  # noqa: E402

DATABASE = "berth_bench_swarm"
IMAGES = (
    "berth-demo/guestbook-frontend:1.0",
    "berth-demo/guestbook-api:1.0",
    "berth-demo/worker:1.0",
    "berth-demo/web:1.0",
)
TIMEOUT = 180.0
HEALTH = """    healthcheck:
      test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/health || exit 1"]
      interval: 2s
      timeout: 2s
      retries: 3
      start_period: 5s
"""
# The guestbook without what a swarm refuses today (published port, named volume, the
# service_healthy conditions): frontend -> api by name, stats polling the api.
GUESTBOOK = (
    """services:
  frontend:
    image: ${BERTH_REGISTRY}/library/guestbook-frontend:1.0
    environment: {API_HOST: api, API_PORT: "8080", TITLE: Benchmark}
    depends_on: [api]
"""
    + HEALTH
    + """    deploy:
      replicas: 2
      placement: {constraints: ["node.role==worker"]}
      resources: {limits: {cpus: "0.25", memory: 64M}}
    stop_grace_period: 2s
  api:
    image: ${BERTH_REGISTRY}/library/guestbook-api:1.0
    environment: {MAX_MESSAGE: "280"}
"""
    + HEALTH
    + """    deploy:
      replicas: 2
      placement: {constraints: ["node.role==worker"]}
      resources: {limits: {cpus: "0.25", memory: 64M}}
    stop_grace_period: 2s
  stats:
    image: ${BERTH_REGISTRY}/library/worker:1.0
    environment: {TARGET_URL: "http://api:8080/cgi-bin/stats", INTERVAL: "10"}
    depends_on: [api]
    healthcheck:
      test: ["CMD", "/app/healthy.sh"]
      interval: 2s
      timeout: 2s
      retries: 3
      start_period: 3s
    deploy:
      resources: {limits: {cpus: "0.1", memory: 16M}}
    stop_grace_period: 2s
"""
)
WANTED = 5  # tasks of the guestbook: 2 + 2 + 1
LOSS = """services:
  web:
    image: ${{BERTH_REGISTRY}}/library/web:1.0
    deploy:
      replicas: {replicas}
      placement: {{constraints: ["node.role==worker"]}}
    stop_grace_period: 1s
"""


def own_redis(db: int) -> str:
    """The Redis db's URL, refused unless the db is empty (another run may own it: it is
    never flushed unasked); flushed at exit, when it holds only this run's keys."""
    import redis

    url = f"redis://127.0.0.1:6379/{db}"
    client = redis.Redis.from_url(url)
    if client.dbsize():
        sys.exit(f"redis db {db} is not empty: pass --redis-db with a db nothing else uses")
    bench.on_cleanup(client.flushdb)
    return url


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what} (last: {result!r})")
        time.sleep(interval)


# --- the world: swarm, registry, daphne, Berth's rows ------------------------------------


class World:
    """Everything the rounds share; each piece registers its own cleanup."""

    def __init__(self, redis_db: int) -> None:
        from tests.perf.bench_deploy_vs_compose import free_port, start_registry
        from tests.swarm.cluster import Cluster

        bench.install_cleanup()
        bench.require_engine()
        bench.require_images(IMAGES)
        self.logs = Path(tempfile.mkdtemp(prefix="berth-bench-swarm-"))
        bench.on_cleanup(lambda: shutil.rmtree(self.logs, ignore_errors=True))
        os.environ["REDIS_URL"] = own_redis(redis_db)
        bench.setup_django(DATABASE)
        port = free_port()
        start_registry(port, self.logs)
        self.registry = os.environ["BERTH_REGISTRY_ADDR"]
        bench.start_daphne(port, self.logs / "daphne.log", DJANGO_DEBUG="0",
                           DJANGO_SECURE_SSL_REDIRECT="0")  # fmt: skip
        bench.wait_http(f"http://127.0.0.1:{port}/")
        self.admin, self.password = self.publish()
        self.cluster = Cluster()
        bench.on_cleanup(self.cluster.down)
        self.cluster.up()
        say(f"swarm {self.cluster.run_id} up in {self.cluster.up_seconds:.1f}s")
        for forwarded in (int(self.registry.rsplit(":", 1)[1]), port):
            self.cluster.forward_loopback(forwarded)
        self.user, self.tenant, self.environment, self.host = self.register()
        self.docker_config = self.logs / "docker-config"
        login = subprocess.run(
            ["docker", "-H", self.cluster.manager.endpoint, "login", self.registry,
             "-u", self.admin, "--password-stdin"],
            input=self.password, text=True, capture_output=True, timeout=60,
            env={**os.environ, "DOCKER_CONFIG": str(self.docker_config)},
        )  # fmt: skip
        if login.returncode != 0:
            raise RuntimeError(f"docker login on the manager failed: {login.stderr.strip()}")

    def publish(self) -> tuple[str, str]:
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from apps.catalog.loader import load_catalog
        from apps.registry.publish import demo_images, platform_ref

        password = bench.RUN_ID * 4
        admin = get_user_model().objects.create_superuser(
            f"bench-admin-{bench.RUN_ID}", "admin@example.com", password
        )
        bench.on_cleanup(
            lambda: bench.docker("rmi", *[platform_ref(i) for i in demo_images()], check=False)
        )
        load_catalog(bench.REPO / "catalog")
        began = time.monotonic()
        call_command("publishimages", "--admin", admin.username, stdout=io.StringIO())
        say(f"demo images published to {self.registry} in {time.monotonic() - began:.1f}s")
        return admin.username, password

    def register(self):
        from apps.hosts import services as host_services

        user, tenant, environment, _local = bench.make_tenant("bs")
        host = host_services.register_host(
            actor=None,
            name=f"swarm-{self.cluster.run_id}",
            endpoint=self.cluster.manager.endpoint,
            kind="swarm",
        )
        host = host_services.heartbeat(host.pk)
        environment.hosts.set([host])
        say(f"swarm registered in Berth: {host.state}, {host.swarm_nodes.count()} nodes")
        return user, tenant, environment, host

    def manager(self, *args: str, check: bool = True) -> str:
        env = {**os.environ, "DOCKER_CONFIG": str(self.docker_config)}
        return self.cluster.manager.docker(*args, check=check, env=env)

    def containers_left(self, label: str) -> int:
        """Containers with `label` on every node (a node whose engine is down: none)."""
        return sum(
            len(node.docker("ps", "-aq", "--filter", f"label={label}", check=False).split())
            for node in self.cluster.nodes
        )


# --- deploy: Berth ------------------------------------------------------------------------


def berth_deploy(world: World, name: str, compose: str) -> tuple[float, int]:
    """Seconds until the stack is healthy in Berth's rows; the stack's id."""
    from apps.deployments import reconciler, services
    from apps.deployments.models import Stack

    began = time.perf_counter()
    stack = services.create_stack(world.user, world.environment, name, compose=compose)
    deadline = time.monotonic() + TIMEOUT
    while True:
        reconciler.reconcile_stack(stack.pk)
        row = Stack.objects.get(pk=stack.pk)
        if row.state == Stack.State.HEALTHY:
            return time.perf_counter() - began, stack.pk
        if time.monotonic() > deadline:
            raise RuntimeError(f"stack {name}: {row.state} {row.state_reason}")


def berth_remove(world: World, stack_id: int) -> float:
    from apps.deployments import reconciler, services
    from apps.deployments.models import Stack

    began = time.perf_counter()
    services.remove(world.user, Stack.objects.get(pk=stack_id))
    reconciler.reconcile_stack(stack_id)
    wait_for(lambda: not world.containers_left(f"io.berth.stack={stack_id}"), TIMEOUT,
             f"stack {stack_id}'s containers to go")  # fmt: skip
    return time.perf_counter() - began


def rendered(world: World, stack_id: int) -> str:
    """The file Berth ran (its revision, interpolated), plus `endpoint_mode: dnsrr` on
    each service (Berth sets it; `docker stack deploy` would ask for a VIP: no IPVS)."""
    import yaml

    from apps.compose.interpolate import interpolate
    from apps.compose.limits import DEFAULT_LIMITS
    from apps.compose.yaml_safe import safe_load
    from apps.deployments.models import Stack

    revision = Stack.objects.get(pk=stack_id).current_revision
    variables = {**revision.answers, "BERTH_REGISTRY": world.registry}
    data = interpolate(safe_load(revision.compose, DEFAULT_LIMITS), variables)
    for service in data["services"].values():
        service.setdefault("deploy", {})["endpoint_mode"] = "dnsrr"
    return yaml.safe_dump({"version": "3.8", **data}, sort_keys=False)


# --- deploy: docker stack deploy -------------------------------------------------------


def stack_tasks(world: World, name: str) -> list[str]:
    out = world.manager(
        "stack", "ps", name, "--filter", "desired-state=running", "--format", "{{.CurrentState}}",
        check=False,
    )  # fmt: skip
    return out.splitlines()


def stack_deploy(world: World, name: str, path: Path, poll: float) -> float:
    began = time.perf_counter()
    world.manager("stack", "deploy", "--with-registry-auth", "-c", str(path), name)
    wait_for(
        lambda: (lambda ts: len(ts) == WANTED and all(s.startswith("Running") for s in ts))(
            stack_tasks(world, name)
        ),
        TIMEOUT, f"stack {name} running", interval=poll,
    )  # fmt: skip
    return time.perf_counter() - began


def stack_remove(world: World, name: str) -> float:
    began = time.perf_counter()
    world.manager("stack", "rm", name)
    label = f"com.docker.stack.namespace={name}"
    wait_for(lambda: not world.containers_left(label), TIMEOUT, f"stack {name}'s containers")
    wait_for(
        lambda: not world.manager("network", "ls", "-q", "--filter", f"label={label}"),
        TIMEOUT, f"stack {name}'s network",
    )  # fmt: skip
    return time.perf_counter() - began


# --- node loss -----------------------------------------------------------------------------


def swarm_converged(world: World, service: str, victim, replicas: int) -> tuple[bool, bool]:
    """(the victim is down, every wanted task runs on a ready node) as the manager says."""
    state = world.cluster.node_state(victim)[0]
    out = world.manager(
        "service", "ps", service, "--filter", "desired-state=running",
        "--format", "{{.Node}} {{.CurrentState}}",
    )  # fmt: skip
    running = [
        line for line in out.splitlines()
        if line.split()[1] == "Running" and line.split()[0] != victim.hostname
    ]  # fmt: skip
    return state == "down", state == "down" and len(running) == replicas


def berth_converged(world: World, stack_id: int, victim, replicas: int) -> tuple[bool, bool]:
    """(the victim is down in SwarmNode, every replica's Container row running, none on
    the victim per its row and the heartbeat's task lists, and the stack healthy)."""
    from apps.deployments.models import Container, Stack
    from apps.hosts.models import SwarmNode

    node = SwarmNode.objects.get(host=world.host, node_id=victim.node_id)
    rows = list(Container.objects.filter(stack_id=stack_id))
    on_victim = {t["task_id"] for t in node.tasks if t["desired_state"] == "running"}
    whole = (
        node.state == "down"
        and len(rows) == replicas
        and all(
            r.state == "running" and r.engine_id not in on_victim and r.node_id != node.pk
            for r in rows
        )
        and Stack.objects.get(pk=stack_id).state == Stack.State.HEALTHY
    )
    return node.state == "down", whole


def loss_round(world: World, number: int, replicas: int) -> dict[str, float]:
    from apps.deployments import reconciler
    from apps.hosts import services as host_services
    from apps.hosts.models import SwarmNode

    victim = world.cluster.worker_nodes[number % 2]
    _took, stack_id = berth_deploy(world, f"loss{number}", LOSS.format(replicas=replicas))
    service = world.manager("service", "ls", "-q", "--filter", f"label=io.berth.stack={stack_id}")
    marks: dict[str, float] = {}
    world.cluster.kill_engine(victim)
    killed = time.perf_counter()
    try:
        while len(marks) < 4:
            if time.perf_counter() - killed > TIMEOUT:
                raise RuntimeError(f"node loss round {number}: only {sorted(marks)}")
            down, whole = swarm_converged(world, service, victim, replicas)
            now = time.perf_counter() - killed
            if down:
                marks.setdefault("swarm: node down", now)
            if whole:
                marks.setdefault("swarm: converged", now)
            host_services.heartbeat(world.host.pk)
            reconciler.reconcile_host(world.host.pk)
            down, whole = berth_converged(world, stack_id, victim, replicas)
            now = time.perf_counter() - killed
            if down:
                marks.setdefault("berth: node down", now)
            if whole:
                marks.setdefault("berth: converged", now)
            time.sleep(0.2)
    finally:
        back = time.perf_counter()
        world.cluster.start_engine(victim)
    wait_for(
        lambda: host_services.heartbeat(world.host.pk)
        and SwarmNode.objects.get(host=world.host, node_id=victim.node_id).state == "ready",
        TIMEOUT, "the node ready again in Berth", interval=0.5,
    )  # fmt: skip
    marks["berth: ready after restart"] = time.perf_counter() - back  # dockerd start included
    berth_remove(world, stack_id)
    return marks


# --- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loss-rounds", type=int, default=3)
    parser.add_argument("--loss-replicas", type=int, default=4)
    parser.add_argument("--poll", type=float, default=0.2, help="stack deploy poll interval (s)")
    parser.add_argument("--redis-db", type=int, default=10, help="a Redis db nothing else uses")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the swarm is made of network namespaces: run as root")

    world = World(args.redis_db)
    stack_file = world.logs / "guestbook.yml"
    compose = GUESTBOOK

    say("warm-up (not counted): one deployment each, the first pull on every node")
    took, stack_id = berth_deploy(world, "warm", compose)
    stack_file.write_text(rendered(world, stack_id))
    say(f"  berth {took:.2f}s, removed in {berth_remove(world, stack_id):.2f}s")
    took = stack_deploy(world, f"warm{bench.RUN_ID}", stack_file, args.poll)
    say(f"  stack deploy {took:.2f}s, removed in {stack_remove(world, f'warm{bench.RUN_ID}'):.2f}s")

    results: dict[str, list[float]] = {"berth": [], "stack": []}
    removals: dict[str, list[float]] = {"berth": [], "stack": []}
    for number in range(1, args.rounds + 1):
        for side in ("berth", "stack") if number % 2 else ("stack", "berth"):
            if side == "berth":
                took, stack_id = berth_deploy(world, f"gb{number}", compose)
                gone = berth_remove(world, stack_id)
            else:
                name = f"gb{number}{bench.RUN_ID}"
                took = stack_deploy(world, name, stack_file, args.poll)
                gone = stack_remove(world, name)
            results[side].append(took)
            removals[side].append(gone)
            say(f"  round {number} {side:<6} {took:6.2f}s  (removed in {gone:.2f}s)")
    mb, ms = bench.median(results["berth"]), bench.median(results["stack"])
    say("\nround   berth(s)  stack deploy(s)  ratio")
    for i, (b, s) in enumerate(zip(results["berth"], results["stack"], strict=True), 1):
        say(f"{i:>5}   {b:8.2f}  {s:15.2f}  {b / s:5.2f}")
    say(f"median  {mb:8.2f}  {ms:15.2f}  {mb / ms:5.2f}")
    say(f"removal medians: berth {bench.median(removals['berth']):.2f}s, "
        f"stack rm {bench.median(removals['stack']):.2f}s")  # fmt: skip
    say(f"RESULT berth/stack deploy = {mb / ms:.2f} (median {mb:.2f}s vs {ms:.2f}s; goal < 1.1)")

    say(f"\nnode loss: {args.loss_rounds} rounds, {args.loss_replicas} replicas on the workers")
    marks: dict[str, list[float]] = {}
    for number in range(1, args.loss_rounds + 1):
        found = loss_round(world, number, args.loss_replicas)
        say(f"  round {number}: " + ", ".join(f"{k} {v:.1f}s" for k, v in found.items()))
        for key, value in found.items():
            marks.setdefault(key, []).append(value)
    say("node loss medians (seconds after the SIGKILL; the ready mark after the restart):")
    for key, values in marks.items():
        say(f"  {key:<28} {bench.median(values):6.1f}  (max {max(values):.1f})")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        say("\ninterrupted: cleaning up")
        sys.exit(130)
    finally:
        bench.run_cleanups()
