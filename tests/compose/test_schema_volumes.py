"""Service volumes in short and long syntax, classified as volume, bind or tmpfs."""

import pytest
import yaml

from apps.compose import load_compose
from apps.compose.spec import VolumeMount

from .helpers import load, refused, service_refused


def mounts(*items, volumes=("data",)):
    doc = {
        "services": {"web": {"image": "nginx", "volumes": list(items)}},
        "volumes": {name: None for name in volumes},
    }
    return load_compose(yaml.safe_dump(doc)).services["web"].volumes


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("data:/data", VolumeMount("volume", "/data", "data")),
        ("data:/data:ro", VolumeMount("volume", "/data", "data", read_only=True)),
        ("data:/data:rw,nocopy", VolumeMount("volume", "/data", "data", nocopy=True)),
        ("/anonymous", VolumeMount("volume", "/anonymous")),
        ("/host:/ctr", VolumeMount("bind", "/ctr", "/host")),
        ("./rel:/ctr:ro,z", VolumeMount("bind", "/ctr", "./rel", read_only=True, selinux="z")),
        ("../up:/ctr", VolumeMount("bind", "/ctr", "../up")),
        ("~/x:/y", VolumeMount("bind", "/y", "~/x")),
        (
            "/var/run/docker.sock:/var/run/docker.sock",
            VolumeMount("bind", "/var/run/docker.sock", "/var/run/docker.sock"),
        ),
    ],
)
def test_short_syntax(spec, expected):
    assert mounts(spec) == (expected,)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": "volume", "source": "data", "target": "/d"}, VolumeMount("volume", "/d", "data")),
        ({"type": "volume", "target": "/d"}, VolumeMount("volume", "/d")),
        (
            {
                "type": "volume",
                "source": "data",
                "target": "/d",
                "read_only": True,
                "volume": {"nocopy": True},
            },
            VolumeMount("volume", "/d", "data", read_only=True, nocopy=True),
        ),
        ({"type": "bind", "source": "/srv", "target": "/d"}, VolumeMount("bind", "/d", "/srv")),
        (
            {
                "type": "bind",
                "source": "./x",
                "target": "/d",
                "read_only": "true",
                "bind": {"propagation": "rshared", "create_host_path": False, "selinux": "Z"},
            },
            VolumeMount(
                "bind",
                "/d",
                "./x",
                read_only=True,
                propagation="rshared",
                create_host_path=False,
                selinux="Z",
            ),
        ),
        (
            {"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": "64m", "mode": 1777}},
            VolumeMount("tmpfs", "/tmp", tmpfs_size=64 * 2**20, tmpfs_mode=1777),
        ),
        ({"type": "tmpfs", "target": "/tmp"}, VolumeMount("tmpfs", "/tmp")),
        (
            {"type": "volume", "source": "data", "target": "/d", "consistency": "cached"},
            VolumeMount("volume", "/d", "data"),
        ),
    ],
)
def test_long_syntax(spec, expected):
    assert mounts(spec) == (expected,)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("data:relative", "must be an absolute path"),
        ("a:b:c:d", "expected SOURCE:TARGET[:MODE]"),
        ("data:/d:rx", "unknown volume option 'rx'"),
        ("data:/d:ro,rw", "conflicting volume options"),
        ("bad name:/d", "invalid volume name"),
        ("C:\\x:/d", "must be an absolute path"),
        ({"type": "volume"}, "needs 'target'"),
        ({"target": "/d"}, "needs 'type'"),
        ({"type": "npipe", "target": "/d"}, "expected one of volume, bind, tmpfs"),
        ({"type": "cluster", "target": "/d"}, "expected one of"),
        ({"type": "bind", "target": "/d"}, "a bind mount needs 'source'"),
        ({"type": "tmpfs", "source": "x", "target": "/d"}, "a tmpfs mount has no 'source'"),
        ({"type": "volume", "target": "/d", "bind": {}}, "'bind' options do not apply"),
        ({"type": "volume", "target": "/d", "volume": {"subpath": "x"}}, "key 'subpath'"),
        (
            {"type": "bind", "source": "/x", "target": "/d", "bind": {"propagation": "x"}},
            "expected one of",
        ),
        ({"type": "tmpfs", "target": "/d", "tmpfs": {"size": "lots"}}, "invalid size"),
        ({"type": "volume", "target": "/d", "extra": 1}, "key 'extra' is not supported"),
        ({"type": "volume", "target": "/d", "read_only": "maybe"}, "expected true or false"),
        (5, "expected 'SOURCE:TARGET[:MODE]' or a mapping"),
    ],
)
def test_bad_mounts(spec, needle):
    message = service_refused({"volumes": [spec]})
    assert message.startswith("service 'web': volumes[0]")
    assert needle in message


def test_nested_option_errors_point_inside_the_block():
    spec = {"type": "tmpfs", "target": "/d", "tmpfs": {"size": "lots"}}
    assert service_refused({"volumes": [spec]}).startswith(
        "service 'web': volumes[0].tmpfs.size: invalid size"
    )


def test_named_volume_must_be_declared():
    messages = refused({"services": {"web": {"image": "x", "volumes": ["nope:/d"]}}})
    assert messages == ["service 'web': volumes[0]: uses undefined volume 'nope'"]


def test_too_many_volumes():
    message = service_refused({"volumes": [f"/v{i}" for i in range(101)]})
    assert "too many entries (101, at most 100)" in message


def test_long_and_short_mix_with_declared_volume():
    project = load(
        """
        services:
          web:
            image: nginx
            volumes:
              - data:/a
              - type: volume
                source: data
                target: /b
        volumes:
          data: {}
        """
    )
    assert [m.target for m in project.services["web"].volumes] == ["/a", "/b"]
