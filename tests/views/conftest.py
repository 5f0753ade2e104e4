"""Helpers for the HTML page tests: logged-in clients for each of the fixture people."""

import pytest
from django.core.cache import cache
from django.test import Client

from tests.conftest import login


@pytest.fixture(autouse=True)
def _fresh_cache():
    """allauth rate limits and the health banner cache start from zero in each test."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def client_for():
    """client_for(user) -> a Client logged in as that user (a fresh one per call)."""

    def make(user) -> Client:
        return login(Client(), user)

    return make
