"""Shared fixtures: three people (owner, member of the same tenant, outsider) and two tenants."""

import sys

import pytest
from django.test import Client

from apps.core.roles import Role
from apps.tenants import services as tenant_services
from apps.tenants.models import Membership

# Fixtures of one kind of test, for the whole suite (pytest reads `pytest_plugins` only
# here, in the root conftest). The autouse fixtures of the old per-kind folders are plain
# fixtures now, asked for by the modules that need them (`pytest.mark.usefixtures`).
pytest_plugins = [
    "tests.fixtures.api",
    "tests.fixtures.browser",
    "tests.fixtures.commands",
    "tests.fixtures.engine",
    "tests.fixtures.frontier",
    "tests.fixtures.ldap",
    "tests.fixtures.live",
    "tests.fixtures.pages",
    "tests.fixtures.pebble",
    "tests.fixtures.swarm",
]

PASSWORD = "correct-horse-battery-9"


@pytest.fixture(autouse=True)
def _celery_app_stays_current():
    """Berth's tasks are `shared_task` proxies: they send through whichever Celery app is
    current in the thread. A test that makes another app current (`Celery(...)` does by
    default) silently reroutes every later task of this process to that app's broker, and
    tests much later in the run (the browser tests' worker) wait for tasks that never
    come. Put Berth's app back and fail the test that changed it."""
    from celery import current_app

    from paas.celery import app

    yield
    if current_app._get_current_object() is not app:
        stray = current_app.main
        app.set_current()
        pytest.fail(f"the test made Celery app {stray!r} current; pass set_as_current=False")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2 costs about a second per user on this machine; tests need no strong hashes."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _host_pass_lists_everything(settings):
    """Every host pass lists every container, as it did before listing.py: a test that
    changes a container and runs a pass at once must not race the event feed's reader
    thread (a pass sees what the feed had read). tests/deployments/test_listing_engine.py
    turns the feed on and waits for it."""
    from apps.deployments import listing

    settings.BERTH_RECONCILE_FULL_LIST_SECONDS = 0
    yield
    listing.forget()


@pytest.fixture(autouse=True)
def _service_banners_checked_afresh():
    """The banners' checks are cached for 10 s per process. Left over from an earlier
    test, that cache expires at a moment no test chooses: a query count taken across it
    gains the hosts query (CI saw 19 against 18), and one test's unreachable host would
    show on the next test's pages. Every test starts with nothing cached."""
    from apps.portal import health

    health._CACHE.clear()


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, **extra):
        email = extra.pop("email", f"{username}@example.test")
        return django_user_model.objects.create_user(
            username=username, email=email, password=PASSWORD, **extra
        )

    return make


@pytest.fixture
def owner(make_user):
    return make_user("olivia")


@pytest.fixture
def member(make_user):
    return make_user("marcus")


@pytest.fixture
def viewer(make_user):
    return make_user("vera")


@pytest.fixture
def outsider(make_user):
    return make_user("oscar")


@pytest.fixture
def superuser(make_user):
    return make_user("root-admin", is_superuser=True, is_staff=True)


@pytest.fixture
def tenant_a(owner, member, viewer):
    tenant = tenant_services.create_tenant(actor=owner, slug="acme", name="Acme Rockets")
    Membership.objects.create(tenant=tenant, user=member, role=Role.MEMBER)
    Membership.objects.create(tenant=tenant, user=viewer, role=Role.VIEWER)
    return tenant


@pytest.fixture
def tenant_b(outsider):
    return tenant_services.create_tenant(actor=outsider, slug="globex", name="Globex Corp")


def login(client: Client, user) -> Client:
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


@pytest.fixture
def owner_client(client, owner):
    return login(client, owner)


@pytest.fixture
def outsider_client(outsider):
    return login(Client(), outsider)


#: Modules that `make test` runs in its second pytest process, beside the browser tests
#: (deploy/test.sh), so that the two processes take about as long. Chosen by measured
#: time (`--durations`): long engine modules that wait on the engine more than they use
#: the CPU; every swarm module (they share one 3-node swarm per process).
SECOND_RUN = frozenset(
    {
        "tests/swarm/test_swarm_host.py",  # ~45 s, a 3-node swarm of its own
        "tests/swarm/test_swarm_services.py",  # on the same swarm
        "tests/swarm/test_swarm_stacks.py",  # on the same swarm
        "tests/swarm/test_swarm_routes.py",  # on the same swarm, with a frontier
        "tests/swarm/test_swarm_volumes.py",  # on the same swarm
        "tests/swarm/test_swarm_tasks.py",  # on the same swarm
        "tests/swarm/test_swarm_secrets.py",  # on the same swarm
        "tests/swarm/test_swarm_node_loss.py",  # on the same swarm, ~90 s
        "tests/swarm/test_swarm_canary.py",  # on the same swarm, with a frontier
        "tests/swarm/test_swarm_isolation.py",  # on the same swarm, two tenants
        "tests/swarm/test_swarm_route_loss.py",  # on the same swarm, with a frontier
        "tests/swarm/test_swarm_orphans.py",  # on the same swarm
        "tests/swarm/test_swarm_pull_auth.py",  # on the same swarm
        "tests/swarm/test_swarm_guestbook.py",  # on the same swarm, with a frontier
    }
)


def pytest_collection_modifyitems(config, items):
    """Every test using a kind's fixtures carries the kind's marker, so `-m "not engine"`
    deselects every engine test; the SECOND_RUN modules carry `second_run`; then browser
    tests go last: Playwright's sync API leaves an event loop on the main thread, and the
    Channels tests after it need `asyncio.run` there."""
    for item in items:
        if item.nodeid.split("::", 1)[0] in SECOND_RUN:
            item.add_marker(pytest.mark.second_run)
    unmarked = [
        f"{item.nodeid}: uses {fixture} (needs @pytest.mark.{kind})"
        for item in items
        for fixture, kind in fixture_kinds(item)
        if item.get_closest_marker(kind) is None
    ]
    if unmarked:
        raise pytest.UsageError("tests without their kind's marker:\n" + "\n".join(unmarked))
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


def fixture_kinds(item) -> list[tuple[str, str]]:
    """(fixture, marker) for each fixture the test uses, directly or through another,
    that needs an outside service. A fixture module says what its fixtures need with
    `KIND` (all of them) and `FIXTURE_KINDS` (name -> extra markers)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:  # not a plain test function (doctest...)
        return []
    found = []
    for name in item.fixturenames:
        definitions = info.name2fixturedefs.get(name)
        if not definitions:
            continue
        module = sys.modules.get(getattr(definitions[-1].func, "__module__", ""))
        kinds = {getattr(module, "KIND", None), *getattr(module, "FIXTURE_KINDS", {}).get(name, ())}
        found += [(name, kind) for kind in sorted(kinds - {None})]
    return found


@pytest.fixture(scope="session", autouse=True)
def _registry_address_of_this_run():
    """An address of this run's own for Berth's registry (nothing listens there until
    the `registry` fixture puts one in its place). With the default, 127.0.0.1:5000, a
    run beside `make run` would take that installation's registry for its own: images it
    published look private to this run's tenants, and their pulls are refused."""
    from django.conf import settings

    from tests.fixtures.frontier import free_port

    default, settings.BERTH_REGISTRY_ADDR = settings.BERTH_REGISTRY_ADDR, f"127.0.0.1:{free_port()}"
    yield
    settings.BERTH_REGISTRY_ADDR = default


@pytest.fixture(scope="session")
def registry(live_server, tmp_path_factory):
    """A real docker-registry for the session, trusting the live server's token service
    (tests/registry/conftest.py has the details)."""
    from django.conf import settings

    from tests.registry.conftest import start_registry, stop_registry

    server = start_registry(tmp_path_factory.mktemp("registry"), live_server.url)
    # The gate sends manifest uploads to the live server, which forwards them to the
    # registry behind BERTH_REGISTRY_ADDR: by default, this one (tests may point it
    # elsewhere with the `settings` fixture).
    default_addr, settings.BERTH_REGISTRY_ADDR = settings.BERTH_REGISTRY_ADDR, server.addr
    yield server
    settings.BERTH_REGISTRY_ADDR = default_addr
    stop_registry(server)
    _untag_images_of(server.addr)


def _untag_images_of(addr: str) -> None:
    """The engine's tags naming this session's registry (pushes, pulls, publishimages)
    go with it: each run's registry has a port of its own, so they would pile up."""
    from tests.docker_cli import docker

    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False)
    tags = [t for t in listed.split() if t.startswith(f"{addr}/") and not t.endswith(":<none>")]
    if tags:
        docker("rmi", "--no-prune", *tags, check=False)
