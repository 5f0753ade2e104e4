"""Image references: parsed as the engine parses them, image ids refused."""

import pytest

from apps.compose.images import ImageReferenceError, is_image_id, parse_image, split_domain

from .helpers import service, service_refused

ID = "55794016a33cee476aeef8ee81463e1d90fec787d1ccad8f3726d76c42960daf"


@pytest.mark.parametrize(
    "text",
    [
        f"sha256:{ID}",
        ID,
        ID[:12],
        ID[:2],  # the engine resolves any unambiguous prefix, however short
        "cafe",
        "0",
        f"sha256:{ID[:12]}",
        "sha256:5",
        f"SHA256:{ID[:12]}",
        f"{ID[:12].upper()}",
        f" {ID[:12]} ",
    ],
)
def test_image_ids_and_prefixes_are_refused(text):
    assert is_image_id(text)
    with pytest.raises(ImageReferenceError, match="image id"):
        parse_image(text)


@pytest.mark.parametrize(
    "text",
    [
        "cafe:1",  # a tag: the engine looks up a repository, never an id
        "docker.io/library/cafe",
        "library/cafe",
        "cafe/app",
        f"busybox@sha256:{ID}",
        "nginx",
    ],
)
def test_names_that_only_look_hex_are_repositories(text):
    assert not is_image_id(text)
    parse_image(text)


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("nginx", None, "nginx", None, None),
        ("nginx:1.25", None, "nginx", "1.25", None),
        ("library/redis:7", None, "library/redis", "7", None),
        ("team/app", None, "team/app", None, None),
        ("my-team/app", None, "my-team/app", None, None),
        ("docker.io/library/redis", "docker.io", "library/redis", None, None),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/acme/web:1", "localhost:5000", "acme/web", "1", None),
        ("LOCALHOST:5000/acme/web", "LOCALHOST:5000", "acme/web", None, None),
        ("Registry/acme/web", "Registry", "acme/web", None, None),
        ("127.0.0.1:5000/acme/web:1", "127.0.0.1:5000", "acme/web", "1", None),
        ("127.1:5000/acme/web", "127.1:5000", "acme/web", None, None),
        ("2130706433:5000/acme/web", "2130706433:5000", "acme/web", None, None),
        ("[::1]:5000/acme/web:1", "[::1]:5000", "acme/web", "1", None),
        ("[::ffff:7f00:1]/acme/web", "[::ffff:7f00:1]", "acme/web", None, None),
        (
            f"127.0.0.1:5000/acme/web@sha256:{ID}",
            "127.0.0.1:5000",
            "acme/web",
            None,
            f"sha256:{ID}",
        ),
        (f"reg.example.com/a/b:t@sha256:{ID}", "reg.example.com", "a/b", "t", f"sha256:{ID}"),
    ],
)
def test_parse_splits_like_the_engine(text, domain, path, tag, digest):
    ref = parse_image(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)


@pytest.mark.parametrize(
    ("text", "on_hub"),
    [
        ("nginx", True),
        ("team/app", True),
        ("docker.io/team/app", True),
        ("index.docker.io/team/app", True),
        ("DOCKER.IO/team/app", False),  # another registry name to the engine
        ("registry-1.docker.io/team/app", False),
        ("localhost/app", False),
        ("127.0.0.1:5000/acme/web", False),
    ],
)
def test_docker_hub_is_only_its_exact_names(text, on_hub):
    assert parse_image(text).on_hub is on_hub


@pytest.mark.parametrize(
    "text",
    [
        "",
        "UPPER",
        "acme/Web",
        "@sha256:" + ID,
        "acme/web@sha256:short",
        "localhost./acme/web",
        "host_x:5000/a/b",
        "[::1/a",
        "a" * 300,
    ],
)
def test_malformed_references_are_refused(text):
    with pytest.raises(ImageReferenceError):
        parse_image(text)


def test_pinned_reference_keeps_the_repository_as_written():
    ref = parse_image("LOCALHOST:5000/acme/web:1")
    assert ref.with_digest(f"sha256:{ID}") == f"LOCALHOST:5000/acme/web@sha256:{ID}"


@pytest.mark.parametrize(
    ("domain", "split"),
    [
        ("127.0.0.1:5000", ("127.0.0.1", 5000)),
        ("LOCALHOST:5000", ("localhost", 5000)),
        ("[::1]:5000", ("::1", 5000)),
        ("[::1]", ("::1", None)),
        ("registry.example.com", ("registry.example.com", None)),
    ],
)
def test_split_domain(domain, split):
    assert split_domain(domain) == split


class TestComposeImageField:
    """The compose reader refuses ids as a field error on `image` (the API's 400)."""

    @pytest.mark.parametrize("image", [f"sha256:{ID}", ID, ID[:12], "abc", f"sha256:{ID[:6]}"])
    def test_image_id_is_a_field_error(self, image):
        message = service_refused({"image": image})
        assert message.startswith("service 'web': image:")
        assert "image id" in message

    def test_repository_names_still_pass(self):
        assert service({"image": "cafe:1"}).image == "cafe:1"
        assert service({"image": "[::1]:5000/acme/web:1"}).image == "[::1]:5000/acme/web:1"
