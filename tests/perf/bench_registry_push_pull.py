"""Registry push and pull of a ~50 MB image: Berth's token auth vs. the same registry without auth.

Two Debian docker-registry instances on free loopback ports, rendered by Berth's own
config (apps.registry.config), one trusting Berth's token service (a real daphne on a
free loopback port over database `berth_bench_push_pull`), one with auth switched off.
The stock docker CLI (private DOCKER_CONFIG) logs in to the first with an API token.

Each round builds a fresh image FROM scratch (busybox + `--size-mb` MB of os.urandom,
which does not compress), so no layer exists in either registry yet; then, alternating
which registry goes first, it times `docker push` to each, and `docker pull` from each
after `docker image rm` of every local tag (the layers really transfer both ways).

Run from the repo root:
  .venv/bin/python tests/perf/bench_registry_push_pull.py [--rounds 3] [--size-mb 50]
Needs PostgreSQL, Redis, the Docker engine and /usr/bin/docker-registry. Prints each
round's seconds, the medians and `RESULT push/pull auth/noauth = <ratio>` (goal: <= 1.05).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup as bench  # noqa: E402
from bench_registry_tokens import free_port, start_daphne  # noqa: E402

DATABASE = "berth_bench_push_pull"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


class Cli:
    """The docker CLI with a private config folder (no login left in ~/.docker)."""

    def __init__(self, config_dir: Path) -> None:
        self.env = {
            **os.environ,
            "DOCKER_CONFIG": str(config_dir),
            "DOCKER_HOST": bench.DOCKER_HOST,
        }

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        done = subprocess.run(
            ["docker", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=600,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:2])} failed: {done.stderr.strip()}")
        return done.stdout

    def timed(self, *args: str) -> float:
        started = time.perf_counter()
        self.run(*args)
        return time.perf_counter() - started

    def remove(self, *refs: str) -> None:
        self.run("image", "rm", "-f", *refs, check=False)


def build_image(cli: Cli, work: Path, tag: str, size_mb: int) -> None:
    """FROM scratch + busybox + size_mb of random bytes (incompressible)."""
    context = work / "context"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir()
    shutil.copy(BUSYBOX, context / "busybox")
    with (context / "payload.bin").open("wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(1024 * 1024))
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY payload.bin /payload.bin\n"
        'ENTRYPOINT ["/bin/busybox"]\nCMD ["true"]\n'
    )
    cli.run("build", "-q", "-t", tag, str(context))
    shutil.rmtree(context, ignore_errors=True)


def make_login() -> tuple[str, str, str]:
    """A user owning a run-unique tenant, and one of their API tokens: (tenant, user, token)."""
    from django.contrib.auth import get_user_model

    from apps.accounts.services import create_token
    from apps.tenants import services as tenant_services

    user = get_user_model().objects.create_user(
        username=f"bench-{bench.RUN_ID}", email=f"p{bench.RUN_ID}@example.com"
    )
    tenant = tenant_services.create_tenant(actor=user, slug=f"pp{bench.RUN_ID}", name="Bench")
    _, raw = create_token(actor=user, name="bench")
    return tenant.slug, user.username, raw


def wait_for(url: str) -> None:
    import requests

    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


_LOG_TIME = re.compile(r'^time="([0-9-]+T[0-9:]+)(\.[0-9]+)?Z"')


def _log_time(line: str) -> float | None:
    found = _LOG_TIME.match(line)
    if not found:
        return None
    fraction = float(found.group(2) or 0)
    return datetime.fromisoformat(found.group(1)).replace(tzinfo=UTC).timestamp() + fraction


def auth_handshake(log: Path, offset: int) -> float:
    """Seconds the token dance held the client up, from the registry's own log after
    `offset`: its 401 challenge on /v2/, until the first request with a token."""
    challenged = None
    with log.open(errors="replace") as handle:
        handle.seek(offset)
        for line in handle:
            if challenged is None and "authorization token required" in line:
                challenged = _log_time(line)
            elif challenged is not None and 'msg="authorized request"' in line:
                return (_log_time(line) or challenged) - challenged
    return float("nan")


SETTLE_SECONDS = 1.5
# Whose CPU a transfer costs: Berth's web server, the registries and the Docker daemon.
PROCESSES = {"daphne": "daphne -b", "registries": "docker-registry serve", "dockerd": "dockerd"}


def cpu_seconds() -> dict[str, float]:
    """User + system CPU seconds so far of each process group in PROCESSES (from /proc)."""
    result = {}
    for label, pattern in PROCESSES.items():
        pids = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
        total = 0.0
        for pid in pids.stdout.split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        result[label] = total
    return result


def timed_with_cpu(cli: Cli, *args: str) -> tuple[float, dict[str, float]]:
    before = cpu_seconds()
    seconds = cli.timed(*args)
    after = cpu_seconds()
    return seconds, {k: after[k] - before.get(k, 0.0) for k in after}


def settle() -> None:
    """Let the previous transfer's aftermath finish (the registry's notifications to
    Berth, the daemon's bookkeeping) before the clock starts, so neither side is timed
    while the 2-core machine still works for the other: on this machine a push is mostly
    the daemon gzipping the layer on one core, and its time moves with any other load."""
    time.sleep(SETTLE_SECONDS)


def one_round(
    cli: Cli, work: Path, registries: dict, auth_log: Path, tenant: str, number: int, size_mb: int
):
    """Build a fresh image; push to, then pull from, each registry in the given order.

    Returns the push and pull seconds per registry, the token handshakes of the
    authenticated push and pull (seconds, from the registry's log) and the CPU seconds
    each transfer cost per process group."""
    local = f"berth-bench/push-pull:{bench.RUN_ID}-{number}"
    build_image(cli, work, local, size_mb)
    refs = {name: f"{addr}/{tenant}/big{number}:1" for name, addr in registries.items()}
    for ref in refs.values():
        cli.run("tag", local, ref)
    handshakes = {}
    cpu = {}
    push = {}
    for name, ref in refs.items():
        settle()
        offset = auth_log.stat().st_size
        push[name], cpu[("push", name)] = timed_with_cpu(cli, "push", ref)
        if name == "auth":
            handshakes["push"] = auth_handshake(auth_log, offset)
    cli.remove(local, *refs.values())
    pull = {}
    for name, ref in refs.items():
        settle()
        offset = auth_log.stat().st_size
        pull[name], cpu[("pull", name)] = timed_with_cpu(cli, "pull", ref)
        if name == "auth":
            handshakes["pull"] = auth_handshake(auth_log, offset)
        cli.remove(ref)
    return push, pull, handshakes, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=50)
    args = parser.parse_args()
    bench.install_cleanup()
    bench.require_engine()
    bench.setup_django(DATABASE)
    from tests.registry.conftest import start_registry, stop_registry

    tenant, username, token = make_login()
    work = Path(tempfile.mkdtemp(prefix="berth-bench-pp-"))
    bench.on_cleanup(lambda: shutil.rmtree(work, ignore_errors=True))
    logs = bench.REPO / "var" / "log"
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    start_daphne(port, logs)
    public_url = f"http://127.0.0.1:{port}"
    wait_for(f"{public_url}/registry/token/")
    servers = {}
    for name, auth in (("auth", True), ("noauth", False)):
        (work / name).mkdir()
        servers[name] = start_registry(work / name, public_url, auth=auth)
        bench.on_cleanup(lambda server=servers[name]: stop_registry(server))
    cli = Cli(work / "docker-config")
    cli.run("login", servers["auth"].addr, "-u", username, "--password-stdin", stdin=token)
    bench.say(
        f"daphne {public_url}; registry with token auth {servers['auth'].addr}, "
        f"without auth {servers['noauth'].addr}; image {args.size_mb} MB random + busybox"
    )
    times = {(op, name): [] for op in ("push", "pull") for name in servers}
    handshakes = {"push": [], "pull": []}
    cpu: dict[tuple[str, str], list[dict[str, float]]] = {key: [] for key in times}
    try:
        for number in range(1, args.rounds + 1):
            order = ["auth", "noauth"] if number % 2 else ["noauth", "auth"]
            registries = {name: servers[name].addr for name in order}
            push, pull, shakes, used = one_round(
                cli, work, registries, servers["auth"].log, tenant, number, args.size_mb
            )
            for name in order:
                times[("push", name)].append(push[name])
                times[("pull", name)].append(pull[name])
            for op, seconds in shakes.items():
                handshakes[op].append(seconds)
            for key, seconds in used.items():
                cpu[key].append(seconds)
            bench.say(
                f"round {number} ({order[0]} first): push auth {push['auth']:.2f}s "
                f"noauth {push['noauth']:.2f}s; pull auth {pull['auth']:.2f}s "
                f"noauth {pull['noauth']:.2f}s; token handshake push "
                f"{shakes['push'] * 1000:.0f} ms, pull {shakes['pull'] * 1000:.0f} ms"
            )
    finally:
        cli.run("logout", servers["auth"].addr, check=False)
        for number in range(1, args.rounds + 1):  # whatever a failed round left behind
            refs = [f"{s.addr}/{tenant}/big{number}:1" for s in servers.values()]
            cli.remove(f"berth-bench/push-pull:{bench.RUN_ID}-{number}", *refs)
    for op in ("push", "pull"):
        auth, noauth = bench.median(times[(op, "auth")]), bench.median(times[(op, "noauth")])
        # Rounds differ more than the two registries within a round (disk, the daemon's
        # gzip, other load): the median of each round's own ratio is the paired figure.
        pairs = zip(times[(op, "auth")], times[(op, "noauth")], strict=True)
        paired = bench.median([a / n for a, n in pairs])
        bench.say(
            f"RESULT {op} {args.size_mb} MB: median auth {auth:.2f}s, noauth {noauth:.2f}s, "
            f"auth/noauth = {auth / noauth:.3f}, per-round ratio median {paired:.3f} "
            f"(goal <= 1.05); token handshake median "
            f"{bench.median(handshakes[op]) * 1000:.0f} ms"
        )
        for name in servers:
            spent = ", ".join(
                f"{label} {bench.median([c[label] for c in cpu[(op, name)]]):.2f}s"
                for label in PROCESSES
            )
            bench.say(f"  CPU per {op} to {name} (median): {spent}")


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.run_cleanups()
