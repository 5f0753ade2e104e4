"""The stack page's header line follows the status part (an out-of-band swap), and a
success message said while the stack is busy is tied to its operation."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from apps.deployments import services
from apps.deployments.models import Stack
from tests.conftest import login

pytestmark = pytest.mark.django_db


def headline(body: str) -> str:
    found = re.search(r'<p class="lead" id="stack-headline"[^>]*>.*?</p>', body, re.S)
    assert found, "no header line"
    return found.group(0)


def test_status_part_carries_the_header_line_out_of_band(
    member, stack, django_capture_on_commit_callbacks
):
    client = login(Client(), member)
    page = client.get(reverse("stacks:detail", args=[stack.pk])).content.decode()
    assert "hx-swap-oob" not in headline(page)
    assert ">r1</a>" in headline(page)
    assert 'data-busy="true"' in page
    with django_capture_on_commit_callbacks():
        services.scale(member, stack.services.get(name="web"), 2)
    part = client.get(reverse("stacks:status", args=[stack.pk])).content.decode()
    line = headline(part)
    assert 'hx-swap-oob="true"' in line and ">r2</a>" in line
    assert re.search(r"data-card-revision>r2<", part)
    Stack.objects.filter(pk=stack.pk).update(state="healthy", operation="")
    part = client.get(reverse("stacks:status", args=[stack.pk])).content.decode()
    assert 'data-busy="false"' in part and "Healthy" in headline(part)


def test_operation_message_is_tied_to_the_operation(
    member, stack, django_capture_on_commit_callbacks
):
    client = login(Client(), member)
    Stack.objects.filter(pk=stack.pk).update(state="healthy", operation="")
    with django_capture_on_commit_callbacks():
        page = client.post(reverse("stacks:restart", args=[stack.pk]), follow=True)
    body = page.content.decode()
    flash = re.search(r'<div class="flash flash-success"[^>]*>', body).group(0)
    assert f'data-operation data-stack-id="{stack.pk}"' in flash
    # Elsewhere (no busy stack) a success message is a plain one, hidden after a while.
    page = client.post(reverse("stacks:stop", args=[stack.pk]))
    Stack.objects.filter(pk=stack.pk).update(state="stopped", operation="")
    body = client.get(reverse("stacks:list")).content.decode()
    flash = re.search(r'<div class="flash flash-success"[^>]*>', body).group(0)
    assert "data-operation" not in flash
