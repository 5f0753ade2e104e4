"""Shared plumbing of the engine benchmarks: a database of their own, Django, the docker
CLI, a run-unique tenant, and a cleanup that runs even on Ctrl-C or a crash.

Benchmarks are scripts, not tests: they print figures and never assert on time. Every
object they create in the engine carries a label unique to the run (the tenant slug, or
the compose project name), and the cleanup removes exactly those objects.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qtAc"]
DOCKER_HOST = os.environ.get("BERTH_DOCKER_HOST", "unix:///var/run/docker.sock")
RUN_ID = uuid.uuid4().hex[:6]

_cleanups: list[Callable[[], None]] = []


def say(*parts: object) -> None:
    print(*parts, flush=True)


# --- cleanup, whatever happens ---------------------------------------------------------


def on_cleanup(action: Callable[[], None]) -> None:
    """Run `action` at exit (last registered first), also after Ctrl-C or SIGTERM."""
    _cleanups.append(action)


def run_cleanups() -> None:
    while _cleanups:
        action = _cleanups.pop()
        try:
            action()
        except Exception as exc:  # cleanup goes on with the next step
            say(f"  cleanup step failed: {exc}")


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_cleanup() -> None:
    """SIGTERM behaves like Ctrl-C (a KeyboardInterrupt), so `finally` and atexit run."""
    signal.signal(signal.SIGTERM, _terminate)
    atexit.register(run_cleanups)


# --- the docker CLI (benchmarks never import docker-py) ----------------------------------


def docker(*args: str, check: bool = True, timeout: float = 300) -> str:
    done = subprocess.run(
        ["docker", "-H", DOCKER_HOST, *args], capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def require_engine() -> None:
    try:
        docker("version", "--format", "{{.Server.Version}}", timeout=15)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        sys.exit(
            f"The engine at {DOCKER_HOST} does not answer ({exc}).\n"
            "Start it with: source deploy/lib.sh && berth_engine_start"
        )


def require_images(refs: Iterable[str]) -> None:
    """Build the demo images (deploy/build-images.sh, idempotent) when one is missing."""
    missing = [r for r in refs if not docker("images", "-q", r, check=False)]
    if missing:
        say(f"building demo images ({', '.join(missing)} missing) ...")
        subprocess.run(["bash", str(REPO / "deploy" / "build-images.sh")], check=True)


def unpublished_copy(image: str) -> str:
    """A copy of `image` (same layers, a new id) that no registry has seen.

    Berth refuses a cached image the engine also knows by a name in Berth's registry
    unless the tenant may pull that name (apps/registry/deploy.py); the demo images were
    pushed as `library/*` by a portal whose registry the benchmark's fresh database knows
    nothing of. Removed at the end."""
    name = f"berth-bench/{image.rsplit('/', 1)[-1].split(':')[0]}:{RUN_ID}"
    dockerfile = f"FROM {image}\nLABEL io.berth.bench={RUN_ID}\n"
    done = subprocess.run(
        ["docker", "-H", DOCKER_HOST, "build", "-q", "-t", name, "-"],
        input=dockerfile,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"could not build {name}: {done.stderr.strip()}")
    on_cleanup(lambda: docker("rmi", "-f", name, check=False))
    return name


def ids_with_label(kind: str, label: str) -> list[str]:
    """Ids of containers (`ps`), volumes or networks carrying `label` (key=value)."""
    if kind == "ps":
        out = docker("ps", "-aq", "--filter", f"label={label}", check=False)
    else:
        out = docker(kind, "ls", "-q", "--filter", f"label={label}", check=False)
    return out.split()


def remove_labelled(label: str) -> int:
    """Remove every container, then volume, then network carrying `label`; returns how
    many objects were removed."""
    removed = 0
    containers = ids_with_label("ps", label)
    for start in range(0, len(containers), 100):
        docker("rm", "-f", "-v", *containers[start : start + 100], check=False)
    removed += len(containers)
    volumes = ids_with_label("volume", label)
    if volumes:
        docker("volume", "rm", "-f", *volumes, check=False)
    networks = ids_with_label("network", label)
    for _ in range(10):  # the engine may take a moment to release removed endpoints
        left = ids_with_label("network", label)
        if not left:
            break
        docker("network", "rm", *left, check=False)
        time.sleep(0.5)
    else:
        say(f"  networks with {label} could not be removed: {' '.join(left)}")
    return removed + len(volumes) + len(networks)


def inspect_states(ids: list[str]) -> list[tuple[str, str]]:
    """(state, health) of each container, in one `docker inspect`."""
    if not ids:
        return []
    out = docker("inspect", *ids, check=False)
    result = []
    for attrs in json.loads(out or "[]"):
        state = attrs.get("State") or {}
        result.append((state.get("Status", ""), (state.get("Health") or {}).get("Status", "")))
    return result


# --- a database of our own, and Django --------------------------------------------------


def setup_django(database: str) -> None:
    """Create `database` afresh, point Django at it, migrate; dropped again at exit."""
    psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    psql(f"CREATE DATABASE {database}")
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings")
    # An installation of its own (inherited by the workers it starts): a portal running
    # on the same engine from the same checkout never sees the benchmark's objects.
    os.environ["BERTH_INSTALLATION_ID"] = f"bench{RUN_ID}"
    on_cleanup(lambda: drop_database(database))

    import django

    django.setup()
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    say(f"database {database} migrated in {time.perf_counter() - started:.1f}s")


def psql(sql: str) -> str:
    done = subprocess.run([*PSQL, sql], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"psql failed: {done.stderr.strip()}")
    return done.stdout.strip()


def drop_database(database: str) -> None:
    from django.db import connections

    connections.close_all()
    psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def make_tenant(prefix: str):
    """A user owning a fresh tenant (slug unique to the run), the local host registered.

    Returns (user, tenant, environment, host). Everything Berth then creates in the
    engine for this tenant carries `io.berth.tenant=<slug>`: the cleanup's label.
    """
    from django.contrib.auth import get_user_model

    from apps.hosts.services import ensure_local_host
    from apps.tenants import services as tenant_services

    slug = f"{prefix}{RUN_ID}"
    on_cleanup(lambda: remove_labelled(f"io.berth.tenant={slug}"))
    user = get_user_model().objects.create_user(
        username=f"bench-{RUN_ID}", email=f"bench-{RUN_ID}@example.com", password=uuid.uuid4().hex
    )
    tenant = tenant_services.create_tenant(actor=user, slug=slug, name=f"Benchmark {RUN_ID}")
    environment = tenant.environments.order_by("pk").first()
    host, _created = ensure_local_host()
    return user, tenant, environment, host


# --- figures ----------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: list[float]) -> float:
    """The nearest-rank 95th percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-95 * len(ordered) // 100))
    return ordered[rank - 1]


def start_daphne(port: int, log_path: Path, **env: str) -> subprocess.Popen:
    """The production ASGI app under a real daphne on 127.0.0.1:`port`, its output in
    `log_path`, with this environment plus `env`; stopped by the cleanup."""
    handle = log_path.open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
         "paas.asgi:application"],
        cwd=REPO,
        env={**os.environ, "BERTH_LOG_LEVEL": "WARNING", **env},
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip

    def stop() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        handle.close()

    on_cleanup(stop)
    return proc


def wait_http(url: str, timeout: float = 120) -> None:
    """Until `url` answers at all (any status), or raise after `timeout` seconds."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=10)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
