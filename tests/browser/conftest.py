"""Browser fixtures: headless Chromium (Debian's, driven by Playwright) against the real app.

Pages are served by pytest-django's `live_server` (a real HTTP server over the test
database, with static files from the finders). Deployments go through a REAL Celery
worker started here as a subprocess on the same test database and a spare Redis
database, so the stack page refreshes itself exactly as it does in production.

Every page a test visits is screenshotted into test-artifacts/browser/.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest
from django.conf import settings

# Playwright's sync API keeps an asyncio loop running in this thread; Django would then
# refuse every ORM call from the test as "async unsafe". The test code is synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402
from playwright.sync_api import Error as PlaywrightError  # noqa: E402

from tests.docker_cli import docker  # noqa: F401 - used here and by test modules
from tests.worker_process import stop, wait_ready

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "browser"
BROWSER_REDIS_URL = "redis://127.0.0.1:6379/12"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct-horse-battery-9"
RUN_ID = uuid.uuid4().hex[:6]
# Several runs may share Redis db 12 at once (each on its own test database): each run's
# tasks go to its own queue, so one run's worker never takes another run's stack ids.
QUEUE = f"browser-{RUN_ID}"
_used = {"artifacts": False}


def pytest_terminal_summary(terminalreporter) -> None:
    if _used["artifacts"]:
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(str(ARTIFACTS.resolve()))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so teardown knows the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _used["artifacts"] = True
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One Chromium for the session (never `playwright install`: Debian's build)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visitor:
    """One person at one browser window: goes to pages and screenshots each of them."""

    def __init__(self, page: Page, base_url: str, prefix: str, artifacts: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.prefix = prefix
        self.artifacts = artifacts
        self.shots = 0
        self.broken: list[str] = []
        page.on("response", self._watch)
        page.on("pageerror", lambda exc: self.broken.append(f"JS error: {exc}"))

    def _watch(self, response) -> None:
        if response.status >= 400 and "/static/" in response.url:
            self.broken.append(f"{response.status} {response.url}")

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def visit(self, path: str) -> Page:
        self.page.goto(self.url(path))
        self.snap()
        return self.page

    def snap(self, label: str = "") -> Path:
        """Save a full-page screenshot named after the test, a counter and the page."""
        self._settle()
        self.shots += 1
        where = urlparse(self.page.url).path
        where = re.sub(r"^/invitations/[^/]+", "/invitation", where)  # never a token in a name
        label = label or where.strip("/").replace("/", "-") or "home"
        label = re.sub(r"[^A-Za-z0-9_.-]+", "-", label)[:60]
        path = self.artifacts / f"{self.prefix}-{self.shots:02d}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def _settle(self) -> None:
        """Wait for the page a click may have started loading, and scroll it to the top
        (a sticky top bar would otherwise be pictured mid-page).

        Right after a click on a link, the old page can still report "loaded" while the
        navigation is under way; the script then runs in a context the navigation
        destroys. That is the moment to wait for the new page, not a failure."""
        for attempt in range(5):
            self.page.wait_for_load_state("load")
            try:
                self.page.evaluate("window.scrollTo(0, 0)")
                return
            except PlaywrightError as exc:
                if "Execution context was destroyed" not in str(exc) or attempt == 4:
                    raise
                self.page.wait_for_timeout(100)

    def log_in(self, username: str, password: str = PASSWORD) -> None:
        """Through the sign-in form, as anyone would."""
        page = self.page
        if "/accounts/login/" not in page.url:
            self.visit("/accounts/login/")
        page.locator("input[name=login]").fill(username)
        page.locator("input[name=password]").fill(password)
        page.get_by_role("button", name=re.compile(r"^sign in$", re.I)).click()
        page.wait_for_load_state("load")
        self.snap()

    def assert_assets_loaded(self) -> None:
        """Pico + berth.css applied and htmx running: a page without them is broken."""
        page = self.page
        assert page.evaluate("typeof window.htmx") == "object", "htmx did not load"
        sheets = page.evaluate(
            "Array.from(document.styleSheets).filter(s => s.href && s.cssRules.length).length"
        )
        assert sheets >= 2, "the stylesheets did not load"
        assert not self.broken, self.broken


@pytest.fixture
def visitor_factory(
    browser: Browser, live_server, artifacts_dir: Path, request
) -> Iterator[Callable[..., Visitor]]:
    """Make a Visitor in a fresh browser context (its own cookies), closed at teardown."""
    contexts = []

    def make(name: str = "", **context_options) -> Visitor:
        context = browser.new_context(**context_options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        prefix = request.node.name.removeprefix("test_") + (f"-{name}" if name else "")
        for old in artifacts_dir.glob(f"{prefix}-[0-9][0-9]-*.png"):  # an earlier run's
            old.unlink()
        return Visitor(context.new_page(), live_server.url, prefix, artifacts_dir)

    yield make
    report = getattr(request.node, "report_call", None)
    for context in contexts:
        if report is not None and report.failed:  # what the person saw when it broke
            for page in context.pages:
                Visitor(page, live_server.url, request.node.name, artifacts_dir).snap("FAILED")
        context.close()


@pytest.fixture
def visitor(visitor_factory) -> Visitor:
    return visitor_factory()


@pytest.fixture
def verified_user(django_user_model) -> Callable:
    """A person who signed up and confirmed their address earlier."""
    from allauth.account.models import EmailAddress

    def make(username: str):
        email = f"{username}@example.test"
        user = django_user_model.objects.create_user(
            username=username, email=email, password=PASSWORD
        )
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        return user

    return make


# --- the real Celery worker --------------------------------------------------------------


def _database_url() -> str:
    """The test database (NAME is test_<name> by now) as a DATABASE_URL."""
    db = settings.DATABASES["default"]
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    netloc = f"{auth}@" if auth else ""
    netloc += f"{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    return f"postgres://{netloc}/{db['NAME']}"


def _clear_queue() -> None:
    """Empty this run's queue (not the whole db: another run may be using it)."""
    import redis

    client = redis.Redis.from_url(BROWSER_REDIS_URL)
    for key in client.scan_iter(f"{QUEUE}*"):
        client.delete(key)
    for key in client.scan_iter("_kombu.binding.*"):
        for member in client.smembers(key):
            if QUEUE.encode() in member:
                client.srem(key, member)


def _point_broker_at(url: str, queue: str) -> None:
    """Make this (the test) process queue its tasks on `url`, in `queue`."""
    from paas.celery import app

    settings.CELERY_BROKER_URL = url
    app.conf.broker_url = url
    app.conf.task_default_queue = queue
    if app._pool is not None:  # a pool opened earlier still talks to the old broker
        app._pool.force_close_all()
        app._pool = None
    # The producer pool is cached separately and would still hand out the closed pool.
    app.amqp._producer_pool = None


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup, django_db_blocker, artifacts_dir: Path, registry
) -> Iterator[str]:
    """`celery -A paas worker` on the test database, consuming this run's own queue on
    Redis db 12, pulling from the session's registry; stopped at teardown."""
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("the Celery worker needs a PostgreSQL test database (DATABASE_URL)")
    from paas.celery import app

    _clear_queue()
    old_broker, old_queue = settings.CELERY_BROKER_URL, app.conf.task_default_queue
    old_registry = settings.BERTH_REGISTRY_ADDR
    _point_broker_at(BROWSER_REDIS_URL, QUEUE)
    settings.BERTH_REGISTRY_ADDR = registry.addr  # templates render images from it
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": BROWSER_REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "paas.settings",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "BERTH_REGISTRY_ADDR": registry.addr,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    log_path = artifacts_dir / f"celery-worker-{RUN_ID}.log"
    for old in artifacts_dir.glob("celery-worker-*.log"):
        if time.time() - old.stat().st_mtime > 3600:
            old.unlink()
    log = log_path.open("w")
    celery = Path(sys.executable).parent / "celery"
    worker = subprocess.Popen(
        [str(celery), "-A", "paas", "worker", "--concurrency", "2", "-P", "prefork",
         "-l", "info", "-n", f"browser-{RUN_ID}@%h", "-Q", QUEUE,
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_ready(worker, log_path)
        yield BROWSER_REDIS_URL
    finally:
        stop(worker)
        log.close()
        _point_broker_at(old_broker, old_queue)
        settings.BERTH_REGISTRY_ADDR = old_registry
        _clear_queue()


# --- the engine side ------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_images() -> None:
    """The demo images (idempotent; under a second when they are up to date)."""
    script = Path(settings.BASE_DIR) / "deploy" / "build-images.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"deploy/build-images.sh failed:\n{done.stderr[-3000:]}")


def _publish_demo_images() -> None:
    """What `make run` does once the portal answers: the demo templates name their images
    from the registry. Per test, because each test starts from an empty database; the
    layers are pushed once, later pushes only check them."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    admin = get_user_model().objects.create_superuser(
        f"platform{uuid.uuid4().hex[:8]}", "platform@example.com", "x" * 20
    )
    call_command("publishimages", "--admin", admin.username, stdout=io.StringIO())


@pytest.fixture
def engine_tenant(verified_user, celery_worker, demo_images) -> Iterator:
    """A run-unique tenant owned by a fresh user, the local engine as a host and the
    built-in catalog: what an operator has set up before a user arrives.

    Teardown removes the tenant's stacks through the service layer (the worker does the
    work), then, as a last resort, anything still labelled with the tenant in the engine.
    """
    from apps.catalog.loader import load_catalog
    from apps.hosts.models import Host
    from apps.tenants import services as tenant_services

    report = load_catalog(Path(settings.BASE_DIR) / "catalog")
    assert not report.problems, report.problems
    Host.objects.get_or_create(
        name="local",
        defaults={"endpoint": settings.BERTH_DOCKER_HOST, "state": Host.State.ACTIVE},
    )
    _publish_demo_images()
    owner = verified_user(f"dana{RUN_ID}")
    slug = f"bt{RUN_ID}{uuid.uuid4().hex[:4]}"
    tenant = tenant_services.create_tenant(actor=owner, slug=slug, name=f"Browser {slug}")
    yield tenant
    _remove_stacks(tenant, owner)
    _remove_engine_leftovers(slug)


def _remove_stacks(tenant, owner, timeout: float = 60) -> None:
    from apps.deployments import services
    from apps.deployments.models import Stack

    for stack in Stack.objects.filter(tenant=tenant).exclude(desired_state="removed"):
        try:
            services.remove(owner, stack, volumes=True)
        except Exception as exc:  # noqa: BLE001 -- cleanup must go on
            print(f"cleanup: could not remove stack {stack.name}: {exc}")
    deadline = time.monotonic() + timeout
    label = f"label=io.berth.tenant={tenant.slug}"
    while time.monotonic() < deadline and docker("ps", "-aq", "--filter", label, check=False):
        time.sleep(1)


def _remove_engine_leftovers(slug: str) -> None:
    label = f"label=io.berth.tenant={slug}"
    ids = docker("ps", "-aq", "--filter", label, check=False)
    if ids:
        print(f"cleanup: removing leftover containers of {slug}: {ids.split()}")
        docker("rm", "-f", *ids.split(), check=False)
    volumes = docker("volume", "ls", "-q", "--filter", label, check=False)
    if volumes:
        docker("volume", "rm", "-f", *volumes.split(), check=False)
    networks = docker("network", "ls", "-q", "--filter", label, check=False)
    if networks:
        docker("network", "rm", *networks.split(), check=False)
