"""Property tests: generated and mutated compose files only ever produce ComposeError or a
project, and the policy reports every forbidden construct whatever syntax hides it."""

from __future__ import annotations

import copy
import itertools
import json
import os
from collections.abc import Iterator
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.compose import ComposeError, load_compose
from apps.compose.policy import (
    RULES,
    check_hardening,
    check_host_config,
    check_policy,
    normalize_ports,
)
from apps.compose.schema import parse_project
from apps.compose.service import SERVICE_KEYS

# COMPOSE_EXAMPLES raises the example count for a longer soak run; the default keeps the
# suite fast.
SETTINGS = settings(
    max_examples=int(os.environ.get("COMPOSE_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- vocabulary -------------------------------------------------------------------------

NESTED_KEYS = [
    "test",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "disable",
    "replicas",
    "resources",
    "limits",
    "reservations",
    "cpus",
    "memory",
    "pids",
    "update_config",
    "parallelism",
    "delay",
    "order",
    "failure_action",
    "placement",
    "constraints",
    "labels",
    "condition",
    "aliases",
    "target",
    "published",
    "host_ip",
    "protocol",
    "mode",
    "type",
    "source",
    "read_only",
    "bind",
    "volume",
    "tmpfs",
    "size",
    "nocopy",
    "propagation",
    "external",
    "driver",
    "driver_opts",
    "name",
    "internal",
    "x-ext",
]
KEYS = sorted(SERVICE_KEYS) + NESTED_KEYS + ["build", "env_file", "<<", "x-a", "services"]
WORDS = [
    "host",
    "none",
    "bridge",
    "container:db",
    "service:db",
    "80",
    "80:80",
    "0.0.0.0:80:80",
    "127.0.0.1:8080:80/udp",
    "[::1]:80:80",
    "8000-8010:8000-8010",
    "data:/data",
    "/var/run/docker.sock:/var/run/docker.sock",
    "./x:/x",
    "~/y:/y",
    "/anon",
    "ro",
    "true",
    "false",
    "yes",
    "1m30s",
    "10s",
    "512M",
    "1g",
    "0.5",
    "CMD",
    "CMD-SHELL",
    "NONE",
    "service_healthy",
    "start-first",
    "on-failure:3",
    "unless-stopped",
    "A=1",
    "io.berth.x=1",
    "${X}",
    "${X:-host}",
    "${X:?missing}",
    "$$",
    "$X",
    "${",
    "SYS_ADMIN",
    "seccomp:unconfined",
    "nginx",
    "nginx:1.25",
    "db",
    "web",
    "default",
    "volume",
    "bind",
    "tmpfs",
    "/dev/sda",
]
scalars = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=20),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=10))
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=12,
)
services = st.dictionaries(
    st.sampled_from(["web", "db", "api", "Bad", ""]),
    st.dictionaries(st.sampled_from(sorted(SERVICE_KEYS) + ["x-a", "foo"]), trees, max_size=6),
    max_size=3,
)
documents = st.fixed_dictionaries(
    {"services": services},
    optional={
        "volumes": trees,
        "networks": trees,
        "version": scalars,
        "name": scalars,
        "x-ext": trees,
        "junk": trees,
    },
)


def survives(data: Any, variables: dict[str, str] | None = None) -> None:
    """parse + policy on plain data and on its YAML text: project or ComposeError only."""
    try:
        project = parse_project(data)
        check_policy(normalize_ports(project, "127.0.0.1"))
    except ComposeError as exc:
        assert exc.problems
    try:
        text = yaml.safe_dump(data, allow_unicode=True)
    except yaml.YAMLError:
        return
    try:
        check_policy(load_compose(text, variables or {"X": "1"}))
    except ComposeError as exc:
        assert exc.problems


@SETTINGS
@given(documents)
def test_generated_documents(data):
    survives(data)


@SETTINGS
@given(trees)
def test_generated_anything(data):
    survives(data)


# --- mutations of valid fixtures ---------------------------------------------------------

FIXTURES = [
    {
        "services": {
            "web": {
                "image": "nginx:1.25",
                "ports": ["127.0.0.1:8080:80"],
                "healthcheck": {
                    "test": ["CMD", "wget", "-qO-", "localhost/health"],
                    "interval": "10s",
                    "retries": 3,
                },
                "deploy": {"replicas": 2, "resources": {"limits": {"memory": "128M"}}},
            }
        }
    },
    {
        "services": {
            "frontend": {
                "image": "guestbook/frontend",
                "depends_on": {"api": {"condition": "service_healthy"}},
                "environment": {"API": "http://api:8080"},
                "ports": [{"target": 80, "published": 8080, "host_ip": "127.0.0.1"}],
            },
            "api": {
                "image": "guestbook/api",
                "volumes": ["data:/data", {"type": "tmpfs", "target": "/tmp"}],
                "networks": {"back": {"aliases": ["a"]}},
                "healthcheck": {"test": "wget -q localhost:8080/health"},
            },
        },
        "volumes": {"data": None},
        "networks": {"back": {"internal": True}},
    },
    {
        "x-common": {"restart": "always"},
        "services": {
            "worker": {
                "image": "busybox",
                "command": ["sh", "-c", "while true; do date; sleep 1; done"],
                "labels": ["team=a"],
                "stop_grace_period": "5s",
                "cpus": 0.5,
                "user": "1000:1000",
                "working_dir": "/work",
                "cap_drop": ["ALL"],
                "security_opt": ["no-new-privileges:true"],
                "restart": "on-failure:3",
            }
        },
    },
]


def paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every position in a tree, as a tuple of keys and indexes."""
    found = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found += paths(value, (*prefix, index))
    return found


def mutate(tree: Any, path: tuple, kind: str, junk: Any, key: str) -> Any:
    """Replace, delete, wrap, or add a key at ``path`` in a copy of ``tree``."""
    tree = copy.deepcopy(tree)
    if not path:
        return junk
    parent = tree
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if kind == "replace":
        parent[last] = junk
    elif kind == "delete":
        del parent[last]
    elif kind == "wrap":
        parent[last] = [parent[last]]
    elif kind == "add" and isinstance(parent[last], dict):
        parent[last][key] = junk
    elif kind == "stringify":
        parent[last] = json.dumps(parent[last])
    return tree


@SETTINGS
@given(st.data())
def test_mutated_fixtures(data):
    tree = data.draw(st.sampled_from(FIXTURES))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(tree)))
        kind = data.draw(st.sampled_from(["replace", "delete", "wrap", "add", "stringify"]))
        tree = mutate(tree, path, kind, data.draw(trees), data.draw(keys))
    survives(tree)


@SETTINGS
@given(st.data())
def test_mutated_fixture_text(data):
    text = yaml.safe_dump(data.draw(st.sampled_from(FIXTURES)))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(text)))
        insert = data.draw(
            st.sampled_from(
                [
                    "&a ",
                    "*a",
                    "<<: ",
                    ":",
                    "- ",
                    "[",
                    "{",
                    "}",
                    "\n  ",
                    "'",
                    '"',
                    "!!",
                    "!!bool ",
                    "!!int ",
                    "!!float ",
                    "!!null ",
                    "!!map ",
                    "!!seq ",
                    "!!str ",
                    "!!merge ",
                    "${",
                    "\t",
                    "#",
                    "? ",
                    "|",
                    "",
                ]
            )
        )
        cut = data.draw(st.integers(0, 3))
        text = text[:position] + insert + text[position + cut :]
    try:
        check_policy(load_compose(text, {}))
    except ComposeError as exc:
        assert exc.problems


# --- soundness: forbidden constructs in any syntax ---------------------------------------

HOST_PATHS = st.builds(
    lambda prefix, parts: prefix + "/".join(parts),
    st.sampled_from(["/", "./", "../", "~/", "/srv/", "/home/u/"]),
    st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=3),
)
SOCKETS = st.sampled_from(
    [
        "/var/run/docker.sock",
        "/run/docker.sock",
        "//var/run/docker.sock",
        "/var/run/",
        "/var/run/../run/docker.sock",
        "/",
        "/var",
        "/run",
        "/run/containerd/containerd.sock",
        "./docker.sock",
        "/srv/../var/run/docker.sock",
    ]
)
OTHER_IPS = st.sampled_from(["0.0.0.0", "::", "10.0.0.5", "192.168.1.20", "::ffff:1.2.3.4"])
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
TRUE = st.sampled_from([True, "true", "True", "yes", "on", "y", "TRUE"])


def bind(path: str) -> st.SearchStrategy:
    return st.one_of(
        st.builds(lambda ro: f"{path}:/mnt/x{ro}", st.sampled_from(["", ":ro", ":rw", ":ro,z"])),
        st.just({"type": "bind", "source": path, "target": "/mnt/x"}),
    )


def port(ip: str) -> st.SearchStrategy:
    bracketed = f"[{ip}]" if ":" in ip else ip
    return st.sampled_from(
        [
            f"{bracketed}:8080:80",
            f"{bracketed}::80",
            f"{bracketed}:80:80/udp",
            {"target": 80, "host_ip": ip},
            {"target": 80, "published": 81, "host_ip": ip},
        ]
    )


def labels(prefix_case: str, name: str) -> st.SearchStrategy:
    key = f"{prefix_case}.{name}"
    return st.sampled_from([{key: "1"}, [f"{key}=1"], [key]])


# Each entry: rule -> strategy of (service keys, top-level keys).
FORBIDDEN: dict[str, st.SearchStrategy] = {
    "privileged": TRUE.map(lambda v: ({"privileged": v}, {})),
    "cap_add": st.lists(
        st.sampled_from(["SYS_ADMIN", "NET_ADMIN", "sys_ptrace", "CAP_NET_RAW", "ALL"]),
        min_size=1,
        max_size=3,
    ).map(lambda caps: ({"cap_add": caps}, {})),
    "devices": st.sampled_from(["/dev/sda", "/dev/fuse:/dev/fuse", "/dev/kmsg:/dev/kmsg:rwm"]).map(
        lambda d: ({"devices": [d]}, {})
    ),
    "device_cgroup_rules": st.just(({"device_cgroup_rules": ["a *:* rwm"]}, {})),
    "network_mode": st.one_of(
        st.sampled_from(["host", "bridge", "default"]), NAMES.map(lambda n: f"container:{n}"), NAMES
    ).map(lambda m: ({"network_mode": m}, {})),
    "pid": st.one_of(st.just("host"), NAMES.map(lambda n: f"container:{n}")).map(
        lambda m: ({"pid": m}, {})
    ),
    "ipc": st.one_of(st.just("host"), NAMES.map(lambda n: f"container:{n}")).map(
        lambda m: ({"ipc": m}, {})
    ),
    "uts": st.just(({"uts": "host"}, {})),
    "userns_mode": st.just(({"userns_mode": "host"}, {})),
    "bind_mounts": HOST_PATHS.filter(
        lambda p: "docker.sock" not in p and p.rstrip("/") not in ("", "/var", "/run")
    )
    .flatmap(bind)
    .map(lambda m: ({"volumes": [m]}, {})),
    "docker_socket": SOCKETS.flatmap(bind).map(lambda m: ({"volumes": [m]}, {})),
    "volumes_from": NAMES.map(lambda n: ({"volumes_from": [n]}, {})),
    "security_opt": st.sampled_from(
        [
            "seccomp:unconfined",
            "apparmor=unconfined",
            "label=disable",
            "label:type:spc_t",
            "systempaths=unconfined",
            "no-new-privileges:false",
        ]
    ).map(lambda o: ({"security_opt": [o]}, {})),
    "sysctls": st.just(({"sysctls": {"net.ipv4.ip_forward": "1"}}, {})),
    "cgroup_parent": NAMES.map(lambda n: ({"cgroup_parent": f"/{n}"}, {})),
    "berth_labels": st.tuples(
        st.sampled_from(["io.berth", "IO.BERTH", "Io.Berth"]), NAMES, st.booleans()
    ).flatmap(
        lambda t: labels(t[0], t[1]).map(
            lambda lab: ({"deploy": {"labels": lab}} if t[2] else {"labels": lab}, {})
        )
    ),
    "port_interfaces": OTHER_IPS.flatmap(port).map(lambda p: ({"ports": [p]}, {})),
    "external_volumes": st.sampled_from(
        [{"external": True}, {"name": "tenant_b_data"}, {"external": {"name": "x"}}]
    ).map(lambda v: ({"volumes": ["evil:/evil"]}, {"volumes": {"evil": v}})),
    "external_networks": st.sampled_from([{"external": True}, {"name": "proxy"}]).map(
        lambda n: ({"networks": ["evil"]}, {"networks": {"evil": n}})
    ),
    "volume_driver": st.sampled_from([{"driver": "rexray"}, {"driver_opts": {"type": "nfs"}}]).map(
        lambda v: ({"volumes": ["evil:/evil"]}, {"volumes": {"evil": v}})
    ),
    "network_driver": st.sampled_from(
        [{"driver": "macvlan"}, {"driver": "ipvlan"}, {"driver_opts": {"a": "b"}}]
    ).map(lambda n: ({}, {"networks": {"evil": n}})),
}


def interpolated(
    value: Any, data: st.DataObject, variables: dict[str, str], names: Iterator[str]
) -> Any:
    """Maybe hide each string (or boolean) behind one of Compose's interpolation forms."""
    if isinstance(value, dict):
        return {k: interpolated(v, data, variables, names) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolated(v, data, variables, names) for v in value]
    if isinstance(value, bool):
        value = "true" if value else "false"
    if not isinstance(value, str) or "}" in value or not data.draw(st.booleans()):
        return value
    name = next(names)
    form = data.draw(
        st.sampled_from(["plain", "dollar", "default", "unset_default", "alt", "split"])
    )
    escaped = value.replace("$", "$$")
    if form == "default":
        return f"${{{name}:-{escaped}}}"
    if form == "unset_default":
        return f"${{{name}-{escaped}}}"
    if form == "alt":
        variables[name] = "set"
        return f"${{{name}:+{escaped}}}"
    if form == "split" and len(value) > 1:
        variables[name] = value[1:]
        return f"{escaped[0]}${{{name}}}" if value[0] != "$" else value
    variables[name] = value
    return f"${{{name}}}" if form != "dollar" else f"${name}"


def as_text(doc: dict, service: dict, merged: bool) -> str:
    """YAML text; with ``merged``, the forbidden keys come in through an anchor and ``<<``."""
    if not merged:
        return yaml.safe_dump(doc)
    rest = {k: v for k, v in doc["services"]["web"].items() if k not in service}
    top = {k: v for k, v in doc.items() if k != "services"}
    others = {k: v for k, v in doc["services"].items() if k != "web"}
    items = json.dumps(rest)[1:-1]
    lines = [
        f"x-evil: &evil {json.dumps(service)}",
        "services:",
        f"  web: {{<<: *evil{', ' + items if items else ''}}}",
    ]
    lines += [f"  {name}: {json.dumps(body)}" for name, body in others.items()]
    return "\n".join(lines) + "\n" + (yaml.safe_dump(top) if top else "")


@st.composite
def forbidden_documents(draw):
    rule = draw(st.sampled_from(sorted(FORBIDDEN)))
    service, top = draw(FORBIDDEN[rule])
    variables: dict[str, str] = {}
    data = draw(st.data())
    names = (f"V{n}" for n in itertools.count())
    service = interpolated(service, data, variables, names)
    base = {"image": "nginx", "environment": {"A": "1"}, "labels": {"team": "a"}}
    if "network_mode" not in service and draw(st.booleans()):
        base["ports"] = ["127.0.0.1:8080:80"]
    doc = {"services": {"web": {**base, **service}, "db": {"image": "postgres"}}, **top}
    if "volumes" in doc["services"]["web"] and "volumes" not in doc:
        doc["volumes"] = {}
    text = as_text(doc, service, merged=draw(st.booleans()))
    return rule, text, variables


@SETTINGS
@given(forbidden_documents())
def test_policy_is_sound(case):
    rule, text, variables = case
    project = normalize_ports(load_compose(text, variables), "127.0.0.1")
    found = {p.rule for p in check_policy(project)}
    assert rule in found, (rule, text, variables, found)
    others = set(RULES) - {rule}
    assert rule in {p.rule for p in check_policy(project, allowed_exceptions=others)}


HOST_CONFIG_FORBIDDEN = {
    "privileged": {"Privileged": True},
    "cap_add": {"CapAdd": ["SYS_ADMIN"]},
    "devices": {"Devices": [{"PathOnHost": "/dev/sda"}]},
    "network_mode": {"NetworkMode": "host"},
    "pid": {"PidMode": "host"},
    "ipc": {"IpcMode": "host"},
    "uts": {"UTSMode": "host"},
    "userns_mode": {"UsernsMode": "host"},
    "bind_mounts": {"Binds": ["/srv:/srv"]},
    "docker_socket": {"Mounts": [{"Type": "bind", "Source": "/var/run/docker.sock"}]},
    "volumes_from": {"VolumesFrom": ["x"]},
    "security_opt": {"SecurityOpt": ["seccomp=unconfined"]},
    "sysctls": {"Sysctls": {"a": "1"}},
    "cgroup_parent": {"CgroupParent": "/x"},
    "port_interfaces": {"PortBindings": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "80"}]}},
}


@SETTINGS
@given(
    st.lists(st.sampled_from(sorted(HOST_CONFIG_FORBIDDEN)), min_size=1, max_size=4, unique=True),
    st.dictionaries(
        st.sampled_from(["Memory", "PidsLimit", "Tmpfs", "Init", "ExtraHosts"]), trees, max_size=3
    ),
)
def test_host_config_policy_is_sound(chosen, noise):
    host_config = {"NetworkMode": "env_net", **noise}
    for rule in chosen:
        host_config.update(HOST_CONFIG_FORBIDDEN[rule])
    found = {p.rule for p in check_host_config(host_config, allowed_networks={"env_net"})}
    assert set(chosen) <= found


HOST_CONFIG_KEYS = [
    "Privileged",
    "CapAdd",
    "Devices",
    "DeviceRequests",
    "DeviceCgroupRules",
    "NetworkMode",
    "PidMode",
    "IpcMode",
    "UTSMode",
    "UsernsMode",
    "CgroupnsMode",
    "Binds",
    "Mounts",
    "VolumesFrom",
    "SecurityOpt",
    "Sysctls",
    "CgroupParent",
    "Cgroup",
    "Runtime",
    "Links",
    "PortBindings",
    "PublishAllPorts",
    "MaskedPaths",
    "ReadonlyPaths",
    "Memory",
    "PidsLimit",
    "LogConfig",
]
host_values = st.one_of(
    trees,
    st.lists(
        st.dictionaries(
            st.sampled_from(["Type", "Source", "HostIp", "HostPort", "VolumeOptions", "Config"]),
            trees,
        ),
        max_size=3,
    ),
    st.dictionaries(
        st.sampled_from(["80/tcp", "x"]),
        st.lists(st.dictionaries(st.sampled_from(["HostIp", "HostPort"]), trees), max_size=2),
    ),
)


@SETTINGS
@given(
    st.dictionaries(
        st.one_of(st.sampled_from(HOST_CONFIG_KEYS), st.text(max_size=8)), host_values, max_size=8
    )
)
def test_host_config_never_crashes(host_config):
    for problem in check_host_config(host_config, allowed_volumes={"v"}) + check_hardening(
        host_config
    ):
        assert problem.message.startswith("container 'container': ")
