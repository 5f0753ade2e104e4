"""The live pages (logs, shell) and one container's actions, without the engine: who may
open what, what the actions write and queue, and what htmx gets back."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from apps.activity.models import Event
from apps.deployments import services
from apps.deployments.models import Container
from apps.hosts.models import Host
from tests.conftest import login

pytestmark = pytest.mark.django_db


@pytest.fixture
def container(stack) -> Container:
    host = Host.objects.create(name="local", endpoint="unix:///var/run/docker.sock")
    return Container.objects.create(
        stack=stack,
        service=stack.services.get(name="web"),
        host=host,
        engine_id="f" * 64,
        name="acme-dev-shop-web-1",
        state="running",
    )


def client_for(user) -> Client:
    return login(Client(), user)


def test_stop_marks_user_stopped_records_and_queues(
    member, container, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        services.stop_container(member, container)
    container.refresh_from_db()
    assert container.user_stopped is True
    event = Event.objects.filter(action="container.stop").latest("pk")
    assert event.actor == member and container.name in event.message
    assert any(c.__qualname__.startswith("enqueue_on_commit") for c in callbacks)
    services.start_container(member, container)
    container.refresh_from_db()
    assert container.user_stopped is False


def test_viewer_may_not_act_on_a_container(viewer, container):
    for action in (services.stop_container, services.remove_container):
        with pytest.raises(PermissionDenied):
            action(viewer, container)


def test_htmx_action_answers_204_with_a_toast(member, container):
    response = client_for(member).post(
        reverse("stacks:container_restart", args=[container.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 204
    toast = json.loads(response["HX-Trigger"])["berth-toast"]
    assert toast["kind"] == "success" and container.name in toast["text"]
    plain = client_for(member).post(reverse("stacks:container_stop", args=[container.pk]))
    assert plain.status_code == 302


def test_pages_and_roles(member, viewer, outsider, container):
    logs = reverse("stacks:container_logs", args=[container.pk])
    service_logs = reverse("stacks:service_logs", args=[container.service_id])
    shell = reverse("stacks:shell", args=[container.pk])
    body = client_for(viewer).get(logs).content.decode()
    assert f"/ws/containers/{container.pk}/logs/" in body and "js/live/logs.js" in body
    assert client_for(viewer).get(service_logs).status_code == 200
    assert client_for(viewer).get(shell).status_code == 403  # viewers read, never type
    # No engine holds this container: the page says why instead of offering a terminal
    # (tests/deployments/test_shell_detection.py has the shells of real containers).
    body = client_for(member).get(shell).content.decode()
    assert 'id="no-shell"' in body and "data-ws-path" not in body
    assert client_for(outsider).get(logs).status_code == 404
    assert client_for(outsider).get(shell).status_code == 404
    stop = reverse("stacks:container_stop", args=[container.pk])
    assert client_for(viewer).post(stop).status_code == 403


def test_stack_page_carries_the_live_panel(member, container):
    body = client_for(member).get(reverse("stacks:detail", args=[container.stack_id]))
    text = body.content.decode()
    assert "data-live-stack" in text and "js/live/stack.js" in text
    assert f'data-container-id="{container.pk}"' in text
    assert reverse("stacks:container_stop", args=[container.pk]) in text
    assert 'hx-confirm="Stop' in text


def test_log_download_from_an_unreachable_engine_says_so_in_the_file(member, container):
    """The download has begun when the engine fails: the file ends with the reason."""
    Host.objects.filter(pk=container.host_id).update(endpoint="unix:///nonexistent/docker.sock")
    url = reverse("stacks:container_logs_download", args=[container.pk])
    response = client_for(member).get(url)
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert body.startswith("# Berth: the log could not be read to the end:")
