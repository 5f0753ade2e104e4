"""The engine driver interface and the choice of driver by host kind (no engine needed)."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest

from apps.hosts.engine import DRIVERS, DockerEngine, EngineDriver, EngineError, get_engine
from apps.hosts.models import Host


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_single_engine_driver_implements_the_whole_interface():
    interface = public_methods(EngineDriver)
    driver = public_methods(DockerEngine)
    assert not DockerEngine.__abstractmethods__
    assert sorted(interface) == sorted(driver), "callers use only what the interface names"
    for name, signature in interface.items():
        assert list(driver[name].parameters) == list(signature.parameters), name


def test_every_method_of_the_interface_says_its_contract():
    for name, member in inspect.getmembers(EngineDriver, inspect.isfunction):
        if not name.startswith("_"):
            assert (member.__doc__ or "").strip(), name


def test_every_host_kind_has_a_driver():
    assert set(Host.Kind.values) <= set(DRIVERS)
    assert Host._meta.get_field("kind").default == Host.Kind.ENGINE


def test_a_host_of_kind_engine_gets_the_single_engine_driver():
    host = SimpleNamespace(
        pk=None, kind="engine", endpoint="unix:///nonexistent.sock", tls_client_cert=""
    )
    with get_engine(host) as engine:
        assert isinstance(engine, DockerEngine)
        assert engine.api_calls == 0


def test_get_engine_refuses_an_unknown_kind():
    host = SimpleNamespace(pk=None, kind="kubernetes", endpoint="tcp://manager:2376")
    with pytest.raises(EngineError, match="kind 'kubernetes'") as caught:
        get_engine(host)
    assert not caught.value.retryable
