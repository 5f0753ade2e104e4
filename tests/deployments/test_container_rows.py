"""The stack page's container table, built in Python (apps.deployments.rows): what each
row says and offers, escaped, for each role; rows only, no engine."""

import pytest
from django.urls import reverse

from apps.deployments.models import Container, Stack
from apps.deployments.rows import CONTAINER_LINKS, badge_class, port_text
from apps.hosts.models import Host
from tests.portal import growth

pytestmark = pytest.mark.django_db


@pytest.fixture
def stack(tenant_a):
    stack = growth.add_stacks(tenant_a.environments.first(), 1)[0]
    stack.containers.all().delete()
    return stack


def add(stack: Stack, name: str, host: Host | None = None, **fields) -> Container:
    service = stack.services.order_by("name").first()
    return Container.objects.create(
        stack=stack,
        service=service,
        host=host or growth.host(),
        engine_id=name.encode().hex().ljust(64, "0")[:64],
        name=name,
        replica=Container.objects.filter(service=service).count() + 1,
        **fields,
    )


def row_of(html: str, container: Container) -> str:
    start = html.index(f'<tr data-container-id="{container.pk}"')
    return html[start : html.index("</tr>", start)]


def page(client, stack: Stack) -> str:
    return client.get(reverse("stacks:detail", args=[stack.pk])).content.decode()


@pytest.mark.parametrize(
    ("port", "text"),
    [
        ({"host_ip": "127.0.0.1", "host_port": 8080, "container_port": 80}, "127.0.0.1:8080→80"),
        ({"host_ip": "", "host_port": 8080, "container_port": 80, "protocol": "tcp"}, "8080→80"),
        (
            {"host_ip": "::", "host_port": 53, "container_port": 53, "protocol": "udp"},
            ":::53→53/udp",
        ),
        ({"container_port": 443}, "443"),
    ],
)
def test_port_text(port, text):
    assert port_text(port) == text


def test_badge_colours():
    assert badge_class("healthy") == "badge-success"
    assert badge_class("starting") == "badge-info"
    assert badge_class("unhealthy") == "badge-warning"
    assert badge_class("failed") == "badge-danger"
    assert badge_class("paused") == "badge-muted"


def test_a_running_container_for_a_member(client_for, member, stack):
    running = add(
        stack,
        "web-1",
        state="running",
        health="unhealthy",
        health_reason="probe failed " + "x" * 200,
        restart_count=3,
        ports=[
            {"host_ip": "127.0.0.1", "host_port": 8081, "container_port": 80, "protocol": "tcp"},
            {"host_ip": "127.0.0.1", "host_port": 5353, "container_port": 53, "protocol": "udp"},
        ],
    )
    row = row_of(page(client_for(member), stack), running)
    assert 'data-state="running"' in row
    assert '<span class="badge state-unhealthy badge-warning">unhealthy</span>' in row
    assert "probe failed " + "x" * 106 + "…" in row  # 120 characters at most
    assert (
        '<a href="http://127.0.0.1:8081" target="_blank" rel="noopener" data-port-link '
        'title="Open http://127.0.0.1:8081">127.0.0.1:8081→80</a>, 127.0.0.1:5353→53/udp'
    ) in row
    assert '<td class="num">3</td>' in row
    for route in CONTAINER_LINKS.values():
        offered = reverse(route, args=[running.pk]) in row
        assert offered == (route != "stacks:container_start"), route


def test_a_stopped_container_offers_start(client_for, member, stack):
    stopped = add(stack, "web-2", state="exited", exit_code=137, user_stopped=True,
                  health="unhealthy", health_reason="not shown when stopped")  # fmt: skip
    row = row_of(page(client_for(member), stack), stopped)
    assert "exited <small" in row
    assert "(exit 137)" in row
    assert "stopped by a user" in row
    assert "not shown when stopped" not in row
    assert 'hx-confirm="Start web-2?"' in row
    assert "Shell</a>" not in row
    assert reverse("stacks:container_stop", args=[stopped.pk]) not in row
    assert reverse("stacks:container_remove", args=[stopped.pk]) in row


def test_a_viewer_sees_the_logs_and_no_button(client_for, viewer, stack):
    running = add(stack, "web-3", state="running", health="healthy")
    row = row_of(page(client_for(viewer), stack), running)
    assert reverse("stacks:container_logs", args=[running.pk]) in row
    assert "<button" not in row
    assert "Shell</a>" not in row


def test_a_stack_being_removed_keeps_shell_but_no_changes(client_for, member, stack):
    running = add(stack, "web-4", state="running", health="")
    Stack.objects.filter(pk=stack.pk).update(desired_state=Stack.Desired.REMOVED)
    row = row_of(page(client_for(member), stack), running)
    assert "Shell</a>" in row
    assert "<button" not in row
    assert "<td>—</td>" in row  # no health


def test_names_and_reasons_are_escaped(client_for, member, stack):
    hostile = add(
        stack,
        'x"><script>alert(1)</script>',
        host=Host.objects.create(name="<b>remote</b>", endpoint="tcp://192.0.2.9:2376"),
        state="running",
        health="<i>",
        health_reason="<img src=x onerror=alert(1)>",
    )
    html = page(client_for(member), stack)
    assert "<script>alert(1)" not in html
    assert "<img src=x" not in html
    row = row_of(html, hostile)
    assert 'data-name="x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in row
    assert 'hx-confirm="Restart x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;?"' in row
    assert "<td>&lt;b&gt;remote&lt;/b&gt;</td>" in row
    assert "state-&lt;i&gt; badge-muted" in row
