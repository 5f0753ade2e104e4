"""Which spellings of an address are Berth's registry (and so get a tenant's credential).

Pure logic over settings; the engine-side proof is tests/registry/test_foreign_images.py.
"""

import socket

import pytest

from apps.registry.deploy import is_berth_registry, registry_pull_auth


@pytest.fixture
def loopback_registry(settings):
    settings.BERTH_REGISTRY_ADDR = "127.0.0.1:5000"
    settings.BERTH_REGISTRY_BACKEND_ADDR = ""  # docker-registry itself on 127.0.0.1:5001
    settings.BERTH_PUBLIC_URL = "https://berth.example.com"


@pytest.mark.parametrize(
    "domain",
    [
        "127.0.0.1:5000",
        "localhost:5000",
        "LOCALHOST:5000",
        "LocalHost:5000",
        "127.1:5000",
        "127.0.1:5000",
        "2130706433:5000",
        "0x7f000001:5000",
        "0x7f.1:5000",
        "0177.0.0.1:5000",
        "0.0.0.0:5000",
        "0:5000",
        "[::ffff:7f00:1]:5000",
        "127.0.0.1:5001",  # docker-registry behind the gate
        "localhost:5001",
    ],
)
def test_every_spelling_of_a_loopback_registry_is_berths(loopback_registry, domain):
    assert is_berth_registry(domain)
    auth = registry_pull_auth(f"{domain}/acme/web:1", "acme")
    assert auth is not None and auth["username"] == "berth-deployer$acme"
    assert registry_pull_auth(f"{domain}/acme/web@sha256:{'a' * 64}", "acme") is not None


@pytest.mark.parametrize(
    "domain",
    [
        None,
        "127.0.0.1",  # port 443
        "127.0.0.1:5002",
        "127.0.0.2:5000",  # another loopback address: could be a tenant's published port
        "[::1]:5000",  # the gate listens on IPv4 only
        "berth.example.com:5000",  # a name: only DNS knows where it goes
        "127.0.0.1.nip.io:5000",
        "localhost.example.com:5000",
        "evil.example.com:5000",
        "docker.io",
    ],
)
def test_other_addresses_never_get_a_credential(loopback_registry, domain):
    assert not is_berth_registry(domain)
    image = f"{domain}/acme/web:1" if domain else "acme/web:1"
    assert registry_pull_auth(image, "acme") is None


def test_named_registry_matches_in_any_case_and_default_port(settings):
    settings.BERTH_REGISTRY_ADDR = "registry.example.com"
    settings.BERTH_REGISTRY_BACKEND_ADDR = "127.0.0.1:5001"
    assert is_berth_registry("registry.example.com")
    assert is_berth_registry("REGISTRY.Example.COM:443")
    assert not is_berth_registry("registry.example.com:5000")
    assert not is_berth_registry("localhost")  # the gate binds the name's address only
    settings.BERTH_REGISTRY_ADDR = "registry.example.com:5000"
    assert is_berth_registry("Registry.Example.com:5000")
    assert not is_berth_registry("registry.example.com")


def test_registry_on_every_interface_is_every_local_name(settings):
    settings.BERTH_REGISTRY_ADDR = "0.0.0.0:5000"
    settings.BERTH_REGISTRY_BACKEND_ADDR = "127.0.0.1:5001"
    settings.BERTH_PUBLIC_URL = "https://berth.example.com"
    for domain in ("localhost:5000", "127.0.0.2:5000", "[::1]:5000", "berth.example.com:5000"):
        assert is_berth_registry(domain), domain
    assert is_berth_registry(f"{socket.gethostname()}:5000")
    assert not is_berth_registry("evil.example.com:5000")
    assert not is_berth_registry("berth.example.com:5002")


def test_ipv4_mapped_loopback_is_berths_but_not_a_valid_reference(loopback_registry):
    # distribution's grammar has no dotted IPv6: such a reference is refused outright.
    assert is_berth_registry("[::ffff:127.0.0.1]:5000")
    assert registry_pull_auth("[::ffff:127.0.0.1]:5000/acme/web:1", "acme") is None


def test_hub_and_image_ids_get_no_credential(loopback_registry):
    assert registry_pull_auth("nginx:1", "acme") is None
    assert registry_pull_auth("sha256:" + "a" * 64, "acme") is None
