"""Deploy the three-service guestbook through Berth's REST API, and the same rendered
compose file with Debian's docker-compose (v1), alternating, on the same engine.

Berth: a real daphne serving the API and one real Celery worker; the clock runs from
the POST /api/v1/stacks/ until a GET shows the stack `healthy`. docker-compose: the
clock runs from `up -d` until `docker inspect` shows every container running and
healthy. Both sides poll at the same interval. Each round tears both down (DELETE
?volumes=true until the containers are gone; `down -v`).

Besides the wall times it prints where the time goes, from the engine's own timestamps
(container Created, StartedAt, the first passing health probe), the same way for both.

The guestbook names its images in Berth's registry, as a new user's would be: the
benchmark starts its own docker-registry trusting its daphne, publishes the demo images
there (`publishimages`), and Berth pulls them at every deployment with the tenant's
short-lived credential (the images stay on the engine, so a pull only checks the
manifest). docker-compose runs the same rendered file and, finding the images present,
does not pull.

Run from the repo root:  .venv/bin/python tests/perf/bench_deploy_vs_compose.py [--rounds 5]
Needs: the engine at /var/run/docker.sock, PostgreSQL and Redis on 127.0.0.1,
/usr/bin/docker-compose, Debian's docker-registry; the demo images built
(deploy/build-images.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.perf import _setup as bench  # noqa: E402
from tests.perf._setup import docker, say  # noqa: E402

DATABASE = "berth_bench_deploy"
TEMPLATE = "guestbook"
IMAGES = (
    "berth-demo/guestbook-frontend:1.0",
    "berth-demo/guestbook-api:1.0",
    "berth-demo/worker:1.0",
)
ROOT_SERVICE = "api"  # the others wait for it to be healthy
COMPOSE = "/usr/bin/docker-compose"
TIMEOUT = 180.0


# --- the engine's view of one deployment -------------------------------------------------


def _ts(text: str) -> float:
    """Docker's RFC 3339 timestamp with nanoseconds -> epoch seconds."""
    if not text or text.startswith("0001-"):
        return float("nan")
    head, _, rest = text.partition(".")
    digits = "".join(ch for ch in rest if ch.isdigit())[:6].ljust(6, "0")
    zone = rest.lstrip("0123456789") or "Z"
    stamp = f"{head}.{digits}{'+00:00' if zone == 'Z' else zone}"
    return datetime.fromisoformat(stamp).timestamp()


def _healthy_at(attrs: dict) -> float:
    """End of the first passing probe (retries never matter when the first passes)."""
    log = ((attrs.get("State") or {}).get("Health") or {}).get("Log") or []
    for entry in log:
        if entry.get("ExitCode") == 0:
            return _ts(entry.get("End", ""))
    return float("nan")


@dataclass
class Timeline:
    """Seconds from the start of the clock to each milestone of one deployment."""

    total: float
    phases: dict[str, float] = field(default_factory=dict)
    request: float = float("nan")  # Berth only: until the POST was answered


PHASES = (
    ("to first create", "clock start -> api container created"),
    ("api start", "created -> running"),
    ("api ready", "running -> frontend/stats created (api's test passed, and noticed)"),
    ("dependents start", "created -> all running"),
    ("dependents healthy", "running -> last first-passing probe"),
    ("notice", "last healthy -> the client sees it"),
)
# Not a step of the sum: when Docker's own first probe of api passed. Compose waits for
# it; Berth starts the dependents once its own run of the test passes (readiness.py).
DOCKER_HEALTHY = ("(api docker-healthy)", "api running -> Docker's first passing probe")


def timeline(began: float, seen: float, containers: list[dict], service_of) -> Timeline:
    by_service: dict[str, list[dict]] = {}
    for attrs in containers:
        by_service.setdefault(service_of(attrs), []).append(attrs)
    root = by_service.get(ROOT_SERVICE, [])
    others = [a for name, items in by_service.items() if name != ROOT_SERVICE for a in items]
    if not root or not others:
        return Timeline(seen - began)
    created_root = min(_ts(a["Created"]) for a in root)
    started_root = max(_ts(a["State"]["StartedAt"]) for a in root)
    healthy_root = max(_healthy_at(a) for a in root)
    created_others = min(_ts(a["Created"]) for a in others)
    started_others = max(_ts(a["State"]["StartedAt"]) for a in others)
    healthy_all = max(_healthy_at(a) for a in root + others)
    marks = [began, created_root, started_root, created_others, started_others, healthy_all, seen]
    phases = {name: marks[i + 1] - marks[i] for i, (name, _) in enumerate(PHASES)}
    phases[DOCKER_HEALTHY[0]] = healthy_root - started_root
    return Timeline(seen - began, phases)


def inspect_all(ids: list[str]) -> list[dict]:
    return json.loads(docker("inspect", *ids)) if ids else []


# --- Berth: a real server and a real worker ---------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """Subprocesses this benchmark started; stopped by their own pid (and group) only."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Path:
        log = self.logs / f"{name}.log"
        handle = log.open("wb")
        proc = subprocess.Popen(
            argv,
            cwd=bench.REPO,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: we stop it and its children only
        )
        self.started.append(proc)
        return log

    def stop(self) -> None:
        for proc in reversed(self.started):
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in reversed(self.started):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=5)
        self.started.clear()


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def ready(self) -> bool:
        try:
            return self.call("GET", "/api/v1/stacks/")[0] == 200
        except OSError:  # not listening yet
            return False

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=self.headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                return exc.code, json.loads(payload or b"{}")
            except ValueError:
                return exc.code, {"detail": payload[:300].decode(errors="replace")}


class RoundFailedError(RuntimeError):
    """A deployment that did not get healthy (on a busy machine, a health check past its
    2 s timeout three times): torn down by `cleanup`, then run again (`--retries`)."""

    def __init__(self, message: str, cleanup) -> None:
        super().__init__(message)
        self.cleanup = cleanup


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}")


def start_berth(
    env: dict[str, str], processes: Processes, redis_db: int, port: int
) -> tuple[str, Path]:
    venv = bench.REPO / ".venv" / "bin"
    processes.start(
        "daphne",
        [str(venv / "daphne"), "-b", "127.0.0.1", "-p", str(port), "paas.asgi:application"],
        env,
    )
    worker_log = processes.start(
        "celery",
        [
            str(venv / "celery"),
            "-A",
            "paas",
            "worker",
            "--concurrency",
            "2",
            "-Q",
            "celery",
            "-n",
            f"bench-{bench.RUN_ID}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
        ],
        env,
    )
    wait_for(lambda: b"ready." in worker_log.read_bytes(), 60, "the Celery worker")
    say(f"daphne on 127.0.0.1:{port}, Celery worker ready (redis db {redis_db})")
    return f"http://127.0.0.1:{port}", worker_log


def stack_containers(stack_id: int, tenant: str) -> list[str]:
    out = docker(
        "ps",
        "-aq",
        "--filter",
        f"label=io.berth.stack={stack_id}",
        "--filter",
        f"label=io.berth.tenant={tenant}",
    )
    return out.split()


def berth_round(
    api: Api,
    environment_id: int,
    tenant: str,
    name: str,
    answers: dict,
    poll: float,
    on_healthy=None,
) -> tuple[Timeline, float]:
    """Deploy until healthy; returns the timeline and the teardown time."""
    began = time.time()
    status, body = api.call(
        "POST",
        "/api/v1/stacks/",
        {"name": name, "environment": environment_id, "template": TEMPLATE, "answers": answers},
    )
    if status != 201:
        raise RuntimeError(f"POST /api/v1/stacks/ answered {status}: {body}")
    answered = time.time() - began
    stack_id = body["id"]
    deadline = time.monotonic() + TIMEOUT
    while True:
        status, body = api.call("GET", f"/api/v1/stacks/{stack_id}/")
        if body.get("state") == "healthy":
            break
        if body.get("state") == "failed" or time.monotonic() > deadline:
            raise RoundFailedError(
                f"stack {name}: {body.get('state')} {body.get('state_reason')}",
                lambda: teardown_berth(api, stack_id, tenant),
            )
        time.sleep(poll)
    seen = time.time()
    attrs = inspect_all(stack_containers(stack_id, tenant))
    result = timeline(began, seen, attrs, lambda a: a["Config"]["Labels"]["io.berth.service"])
    result.request = answered
    if on_healthy is not None:
        on_healthy(stack_id)
    return result, teardown_berth(api, stack_id, tenant)


def teardown_berth(api: Api, stack_id: int, tenant: str) -> float:
    began = time.perf_counter()
    status, body = api.call("DELETE", f"/api/v1/stacks/{stack_id}/?volumes=true")
    if status != 202:
        raise RuntimeError(f"DELETE answered {status}: {body}")
    wait_for(
        lambda: (
            api.call("GET", f"/api/v1/stacks/{stack_id}/")[0] == 404
            and not stack_containers(stack_id, tenant)
        ),
        TIMEOUT,
        f"stack {stack_id} to be removed",
        interval=0.05,
    )
    return time.perf_counter() - began


# --- docker-compose ---------------------------------------------------------------------


def render_compose(revision) -> str:
    """The revision's compose text with its answers interpolated and its ports bound where
    Berth bound them (the environment's interface): the file Berth ran, for Compose."""
    import yaml

    from apps.compose.interpolate import interpolate
    from apps.compose.limits import DEFAULT_LIMITS
    from apps.compose.yaml_safe import safe_load

    variables = {**revision.answers, "BERTH_REGISTRY": os.environ["BERTH_REGISTRY_ADDR"]}
    data = interpolate(safe_load(revision.compose, DEFAULT_LIMITS), variables)
    services = revision.spec["project"]["services"]
    for name, service in data["services"].items():
        if "ports" in service:
            service["ports"] = [
                f"{p['host_ip']}:{p['published'] or ''}:{p['target']}/{p['protocol']}"
                for p in services[name]["ports"]
            ]
    return yaml.safe_dump(_escape_dollars(data), sort_keys=False)


def _escape_dollars(value):
    """Values are final: Compose must not interpolate them again."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _escape_dollars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_dollars(v) for v in value]
    return value


def compose(project: str, path: Path, *args: str) -> None:
    env = {**os.environ, "DOCKER_HOST": bench.DOCKER_HOST}
    done = subprocess.run(
        [COMPOSE, "-p", project, "-f", str(path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"docker-compose {args[0]} failed: {done.stderr.strip()[-500:]}")


def compose_round(project: str, path: Path, expected: int, poll: float) -> tuple[Timeline, float]:
    label = f"com.docker.compose.project={project}"
    began = time.time()
    compose(project, path, "up", "-d")
    deadline = time.monotonic() + TIMEOUT
    while True:
        ids = bench.ids_with_label("ps", label)
        states = bench.inspect_states(ids)
        if len(states) >= expected and all(
            s == "running" and h in ("healthy", "") for s, h in states
        ):
            break
        failed = any(h == "unhealthy" or s in ("exited", "dead") for s, h in states)
        if failed or time.monotonic() > deadline:
            raise RoundFailedError(
                f"compose project {project}: {states}",
                lambda: compose(project, path, "down", "-v", "--timeout", "5"),
            )
        time.sleep(poll)
    seen = time.time()
    attrs = inspect_all(ids)
    result = timeline(
        began, seen, attrs, lambda a: a["Config"]["Labels"]["com.docker.compose.service"]
    )
    down = time.perf_counter()
    compose(project, path, "down", "-v", "--timeout", "5")
    return result, time.perf_counter() - down


# --- main -----------------------------------------------------------------------------


def report(berth: list[Timeline], composed: list[Timeline], teardown: dict) -> None:
    say("\nround   berth(s)  compose(s)  ratio")
    for i, (b, c) in enumerate(zip(berth, composed, strict=False), 1):
        say(f"{i:>5}   {b.total:8.2f}  {c.total:10.2f}  {b.total / c.total:5.2f}")
    mb = bench.median([t.total for t in berth])
    mc = bench.median([t.total for t in composed])
    say(f"median  {mb:8.2f}  {mc:10.2f}  {mb / mc:5.2f}")
    say(
        f"\nteardown medians: berth DELETE until gone {bench.median(teardown['berth']):.2f}s, "
        f"compose down -v {bench.median(teardown['compose']):.2f}s"
    )
    say("\nwhere the time goes (medians, seconds, from the engine's timestamps):")
    say(f"  {'phase':<20} {'berth':>7} {'compose':>8}   meaning")
    for name, meaning in (*PHASES, DOCKER_HEALTHY):
        b = bench.median([t.phases[name] for t in berth if name in t.phases])
        c = bench.median([t.phases[name] for t in composed if name in t.phases])
        say(f"  {name:<20} {b:7.2f} {c:8.2f}   {meaning}")
    request = bench.median([t.request for t in berth])
    say(f"  (Berth's POST /api/v1/stacks/ was answered after {request:.2f}s, median)")
    say(f"\nRESULT berth/compose = {mb / mc:.2f} (median {mb:.2f}s vs {mc:.2f}s; goal < 1.0)")


def prepare(database: str = DATABASE):
    """Database, catalog, tenant and an API token (raw key)."""
    bench.setup_django(database)
    from django.core.management import call_command

    from apps.accounts.services import create_token

    call_command("loadcatalog", stdout=open(os.devnull, "w"))  # noqa: SIM115
    user, tenant, environment, _host = bench.make_tenant("bd")
    _token, raw = create_token(actor=user, name="benchmark", tenant=tenant)
    return tenant, environment, raw


def start_registry(berth_port: int, logs: Path) -> None:
    """A docker-registry whose token realm is the benchmark's daphne; its address goes
    into this process's settings and the environment of daphne and the worker."""
    from django.conf import settings

    from tests.registry.conftest import start_registry as start
    from tests.registry.conftest import stop_registry

    (logs / "registry").mkdir()
    server = start(logs / "registry", f"http://127.0.0.1:{berth_port}")
    bench.on_cleanup(lambda: stop_registry(server))
    os.environ["BERTH_REGISTRY_ADDR"] = settings.BERTH_REGISTRY_ADDR = server.addr
    say(f"docker-registry on {server.addr}")


def publish_demo_images() -> None:
    """`make run`'s step: push the demo images where the templates name them."""
    import io

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from apps.registry.publish import demo_images, platform_ref

    admin = get_user_model().objects.create_superuser(
        f"bench-admin-{bench.RUN_ID}", "admin@example.com", bench.RUN_ID * 4
    )
    bench.on_cleanup(lambda: docker("rmi", *[platform_ref(i) for i in demo_images()], check=False))
    began = time.monotonic()
    call_command("publishimages", "--admin", admin.username, stdout=io.StringIO())
    say(f"demo images published in {time.monotonic() - began:.1f}s")


def redis_env(db: int) -> str:
    import redis

    url = f"redis://127.0.0.1:6379/{db}"
    client = redis.Redis.from_url(url)
    if client.dbsize():
        say(f"redis db {db} is not empty: flushing it (it must be this benchmark's own)")
        client.flushdb()
    bench.on_cleanup(client.flushdb)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--poll", type=float, default=0.1, help="client poll interval (s)")
    parser.add_argument("--redis-db", type=int, default=11, help="a Redis db nothing else uses")
    parser.add_argument("--keep-logs", action="store_true", help="keep daphne/Celery logs")
    parser.add_argument("--database", default=DATABASE, help="PostgreSQL database (dropped)")
    parser.add_argument(
        "--retries", type=int, default=2, help="run a deployment that failed again (busy machine)"
    )
    args = parser.parse_args()

    bench.install_cleanup()
    bench.require_engine()
    if not shutil.which(COMPOSE):
        sys.exit(f"{COMPOSE} is missing: apt-get install docker-compose")
    bench.require_images(IMAGES)
    redis_url = redis_env(args.redis_db)
    logs = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    tenant, environment, raw_token = prepare(args.database)
    port = free_port()
    start_registry(port, logs)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DJANGO_DEBUG": "0",  # as in production, minus TLS (served on loopback only)
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "BERTH_LOG_LEVEL": "INFO",
    }
    processes = Processes(logs)
    if args.keep_logs:
        say(f"server and worker logs: {logs}")
    else:
        bench.on_cleanup(lambda: shutil.rmtree(logs, ignore_errors=True))
    bench.on_cleanup(processes.stop)
    base, _worker_log = start_berth(env, processes, args.redis_db, port)
    api = Api(base, raw_token)
    wait_for(lambda: api.ready(), 30, "the API")
    publish_demo_images()

    project = f"berthbench{bench.RUN_ID}"
    compose_file = logs / "docker-compose.yml"
    bench.on_cleanup(lambda: bench.remove_labelled(f"com.docker.compose.project={project}"))
    answers = {"TITLE": "Benchmark"}
    berth: list[Timeline] = []
    composed: list[Timeline] = []
    teardown: dict[str, list[float]] = {"berth": [], "compose": []}
    failures = {"berth": 0, "compose": 0}
    say(f"{args.rounds} rounds, Berth and docker-compose alternating (poll {args.poll}s)")
    for number in range(1, args.rounds + 1):
        # Round 1 starts with Berth (its revision gives the compose file), then who goes
        # first alternates, so neither side always runs on a freshly cleaned engine.
        for side in ("berth", "compose") if number % 2 else ("compose", "berth"):
            for attempt in range(args.retries + 1):
                try:
                    if side == "berth":
                        result, down = berth_round(
                            api,
                            environment.pk,
                            tenant.slug,
                            f"gb{number}" + (f"x{attempt}" if attempt else ""),
                            answers,
                            args.poll,
                            on_healthy=lambda stack_id: write_compose_file(compose_file, stack_id),
                        )
                    else:
                        result, down = compose_round(project, compose_file, 3, args.poll)
                    break
                except RoundFailedError as exc:
                    failures[side] += 1
                    say(f"  round {number} {side:<7} FAILED ({exc}); torn down")
                    exc.cleanup()
                    if attempt == args.retries:
                        raise
            (berth if side == "berth" else composed).append(result)
            teardown[side].append(down)
            say(f"  round {number} {side:<7} {result.total:6.2f}s  (teardown {down:.2f}s)")
    report(berth, composed, teardown)
    say(f"failed deployments run again: berth {failures['berth']}, compose {failures['compose']}")


def write_compose_file(path: Path, stack_id: int) -> None:
    """Once: the compose file rendered from the first stack's revision."""
    if path.exists():
        return
    from apps.deployments.models import Stack

    revision = Stack.objects.select_related("current_revision").get(pk=stack_id).current_revision
    path.write_text(render_compose(revision))
    say(f"  compose file rendered from stack {stack_id} r{revision.number}: {path}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        say("\ninterrupted: cleaning up")
        sys.exit(130)
    finally:
        bench.run_cleanups()
