"""The tenant policy: every rule, in every syntax Compose allows, with readable messages."""

import pytest

from apps.compose.policy import RULES, check_policy, normalize_ports

from .helpers import load, rules, violations, web

OK_INTERFACE = "127.0.0.1"


def only(rule: str, source, **kwargs) -> None:
    """The source breaks exactly this rule (after binding ports to the allowed interface)."""
    found = rules(source, interface=OK_INTERFACE, **kwargs)
    assert found == {rule}, found


def clean(source, **kwargs) -> None:
    assert rules(source, interface=OK_INTERFACE, **kwargs) == set()


def test_a_plain_stack_passes():
    clean(
        """
        services:
          web:
            image: nginx
            ports: ["8080:80", "127.0.0.1:8443:443", {target: 9000}]
            volumes: ["data:/data", {type: tmpfs, target: /tmp}, "/anon"]
            cap_drop: [ALL]
            security_opt: ["no-new-privileges:true"]
            labels: {com.example.team: a}
          worker: {image: x, network_mode: "service:web", pid: "service:web", ipc: "service:web"}
          other: {image: x, ipc: shareable, network_mode: none}
        volumes:
          data:
          scratch: {driver: local, driver_opts: {type: tmpfs, device: tmpfs, o: "size=64m"}}
        networks:
          back: {driver: bridge, internal: true}
        """
    )


class TestPrivileges:
    @pytest.mark.parametrize("value", [True, "true", "yes", "on", "TRUE", "${P}"])
    def test_privileged_in_any_spelling(self, value):
        only("privileged", web(privileged=value), P="true")

    def test_privileged_false_passes(self):
        clean(web(privileged="${P:-false}"))

    def test_privileged_through_anchor_and_merge_key(self):
        only(
            "privileged",
            """
            x-base: &base
              image: nginx
              privileged: true
            services:
              web:
                <<: *base
            """,
        )

    def test_privileged_through_nested_merges(self):
        only(
            "privileged",
            """
            x-a: &a {privileged: "${P:-true}"}
            x-b: &b
              <<: *a
              image: nginx
            services:
              web: {<<: *b}
            """,
        )

    def test_explicit_key_overrides_merged_privileged(self):
        clean(
            """
            x-a: &a {privileged: true}
            services:
              web: {<<: *a, image: nginx, privileged: false}
            """
        )

    @pytest.mark.parametrize("caps", [["SYS_ADMIN"], ["cap_sys_ptrace"], ["ALL"], ["${CAP}"]])
    def test_cap_add(self, caps):
        only("cap_add", web(cap_add=caps), CAP="NET_ADMIN")

    def test_devices(self):
        only("devices", web(devices=["/dev/sda:/dev/sda"]))
        only("devices", web(devices=[{"source": "/dev/fuse", "target": "/dev/fuse"}]))
        only("device_cgroup_rules", web(device_cgroup_rules=["a *:* rwm"]))


class TestNamespaces:
    @pytest.mark.parametrize(
        "mode", ["host", "${NM:-host}", "container:abc123", "bridge", "default", "tenant_b_net"]
    )
    def test_network_mode(self, mode):
        only("network_mode", web(network_mode=mode))

    def test_network_mode_default_from_variable_can_be_overridden(self):
        clean(web(network_mode="${NM:-host}"), NM="none")

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("pid", "host"),
            ("pid", "container:x"),
            ("ipc", "host"),
            ("ipc", "container:x"),
            ("uts", "host"),
            ("userns_mode", "host"),
            ("pid", "${PID_MODE}"),
        ],
    )
    def test_host_namespaces(self, key, value):
        only(key, web(**{key: value}), PID_MODE="host")

    def test_sibling_namespaces_are_fine(self):
        clean(
            {
                "services": {
                    "a": {"image": "x"},
                    "b": {
                        "image": "x",
                        "network_mode": "service:a",
                        "pid": "service:a",
                        "ipc": "service:a",
                    },
                }
            }
        )

    def test_message(self):
        project = load("services: {web: {image: x, network_mode: host}}")
        assert [p.message for p in check_policy(project)] == [
            "service 'web': network_mode: the host network namespace is not allowed "
            "(rule: network_mode)"
        ]


class TestMounts:
    @pytest.mark.parametrize(
        "spec",
        [
            "/srv/data:/data",
            "./data:/data",
            "../up:/x",
            "~/x:/y",
            ".:/src:ro",
            {"type": "bind", "source": "/etc", "target": "/etc", "read_only": True},
            {"type": "bind", "source": "./conf", "target": "/conf"},
            "${DIR:-/srv}:/data",
        ],
    )
    def test_bind_mounts(self, spec):
        only("bind_mounts", web(volumes=[spec]))

    @pytest.mark.parametrize(
        "spec",
        [
            "/var/run/docker.sock:/var/run/docker.sock",
            "/run/docker.sock:/s",
            "${SOCK:-/var/run/docker.sock}:/var/run/docker.sock",
            "/var/run:/host-run",
            "/:/host",
            "/var:/v",
            "//var//run/./docker.sock:/s",
            "/run/containerd/containerd.sock:/c",
            {"type": "bind", "source": "/var/run/docker.sock", "target": "/d.sock"},
            "./docker.sock:/var/run/docker.sock",
            "/srv/../var/run/docker.sock:/s",
        ],
    )
    def test_docker_socket_gets_its_own_rule(self, spec):
        only("docker_socket", web(volumes=[spec]))

    def test_docker_socket_message(self):
        project = load("services: {web: {image: x, volumes: ['/var/run/docker.sock:/d']}}")
        assert [p.message for p in check_policy(project)] == [
            "service 'web': volumes[0]: mounting the Docker socket (/var/run/docker.sock) gives "
            "full control of the host and is not allowed (rule: docker_socket)"
        ]

    def test_named_and_tmpfs_volumes_are_fine(self):
        clean(
            {
                "services": {
                    "web": {
                        "image": "x",
                        "volumes": ["d:/d", "/anon", {"type": "tmpfs", "target": "/t"}],
                    }
                },
                "volumes": {"d": None},
            }
        )

    @pytest.mark.parametrize(
        ("opts", "rule"),
        [
            ({"type": "none", "o": "bind", "device": "/srv/data"}, "bind_mounts"),
            ({"o": "rbind", "device": "/srv"}, "bind_mounts"),
            ({"type": "ext4", "device": "/dev/sdb1"}, "volume_driver"),
            ({"type": "none", "o": "ro,bind", "device": "/var/run"}, "docker_socket"),
            ({"device": "/dev/sdb1"}, "bind_mounts"),
            ({"type": "nfs", "o": "addr=10.0.0.1", "device": ":/export"}, "volume_driver"),
            ({"type": "cifs", "device": "//server/share"}, "volume_driver"),
            ({"type": "ext4", "device": "tmpfs"}, "volume_driver"),
        ],
    )
    def test_volume_driver_opts(self, opts, rule):
        doc = {
            "services": {"web": {"image": "x", "volumes": ["v:/v"]}},
            "volumes": {"v": {"driver_opts": opts}},
        }
        only(rule, doc)

    def test_volume_driver(self):
        only(
            "volume_driver",
            {"services": {"web": {"image": "x"}}, "volumes": {"v": {"driver": "rexray/ebs"}}},
        )

    def test_volumes_from(self):
        only(
            "volumes_from",
            {"services": {"web": {"image": "x", "volumes_from": ["db"]}, "db": {"image": "x"}}},
        )
        only("volumes_from", web(volumes_from=["container:other_tenant_db"]))


class TestKernel:
    @pytest.mark.parametrize(
        "option",
        [
            "seccomp:unconfined",
            "seccomp=unconfined",
            "apparmor:unconfined",
            "apparmor=docker-x",
            "label:disable",
            "label=type:spc_t",
            "systempaths=unconfined",
            "no-new-privileges:false",
            "seccomp=/x.json",
        ],
    )
    def test_security_opt(self, option):
        only("security_opt", web(security_opt=[option]))

    @pytest.mark.parametrize("option", ["no-new-privileges", "no-new-privileges:true"])
    def test_no_new_privileges_is_fine(self, option):
        clean(web(security_opt=[option]))

    def test_sysctls_and_cgroup_parent(self):
        only("sysctls", web(sysctls={"net.ipv4.ip_forward": 1}))
        only("sysctls", web(sysctls=["kernel.shm_rmid_forced=1"]))
        only("cgroup_parent", web(cgroup_parent="/system.slice"))


class TestLabels:
    @pytest.mark.parametrize(
        "doc",
        [
            web(labels={"io.berth.stack": "other"}),
            web(labels=["io.berth.service=x"]),
            web(labels=["IO.BERTH.revision=1"]),
            web(labels={"io.berth": "x"}),
            web(labels=["${NS:-io.berth}.stack=1"]),
            web(deploy={"labels": {"io.berth.x": "1"}}),
            {"services": {"web": {"image": "x"}}, "volumes": {"v": {"labels": ["io.berth.a=1"]}}},
            {"services": {"web": {"image": "x"}}, "networks": {"n": {"labels": {"io.berth.a": 1}}}},
        ],
    )
    def test_berth_namespace(self, doc):
        only("berth_labels", doc)

    def test_similar_labels_are_fine(self):
        clean(web(labels={"io.berthing": "x", "com.io.berth.x": "y", "berth": "z"}))


class TestPorts:
    @pytest.mark.parametrize(
        "spec",
        [
            "0.0.0.0:80:80",
            "[::]:80:80",
            "10.0.0.5:80:80",
            "${IP:-0.0.0.0}:80:80",
            {"target": 80, "host_ip": "0.0.0.0"},
            {"target": 80, "published": 80, "host_ip": "::"},
        ],
    )
    def test_published_on_other_interfaces(self, spec):
        only("port_interfaces", web(ports=[spec]))

    @pytest.mark.parametrize("spec", ["80:80", "80", 80, {"target": 80}, "8000-8001:80-81"])
    def test_no_address_means_all_interfaces_without_normalization(self, spec):
        assert rules(web(ports=[spec])) == {"port_interfaces"}

    @pytest.mark.parametrize("spec", ["80:80", "80", {"target": 80, "published": 8080}])
    def test_normalized_ports_pass(self, spec):
        clean(web(ports=[spec]))

    def test_normalize_ports_keeps_explicit_addresses_and_copies(self):
        project = load("services: {web: {image: x, ports: ['80:80', '0.0.0.0:81:81']}}")
        normalized = normalize_ports(project, "127.0.0.1")
        assert [p.host_ip for p in normalized.services["web"].ports] == ["127.0.0.1", "0.0.0.0"]
        assert project.services["web"].ports[0].host_ip is None

    def test_allowed_interfaces(self):
        project = load("services: {web: {image: x, ports: ['10.0.0.5:80:80', '[::1]:81:81']}}")
        assert check_policy(project, allowed_interfaces={"10.0.0.5", "0:0::1"}) == []
        assert len(check_policy(project, allowed_interfaces={"10.0.0.5"})) == 1

    def test_port_message(self):
        project = load("services: {web: {image: x, ports: ['0.0.0.0:8080:80']}}")
        assert [p.message for p in check_policy(project)] == [
            "service 'web': ports: port 8080->80/tcp is published on interface 0.0.0.0; "
            "allowed: 127.0.0.1 (rule: port_interfaces)"
        ]


class TestOutsideTheStack:
    @pytest.mark.parametrize(
        "volume", [{"external": True}, {"name": "tenant_b_data"}, {"external": {"name": "x"}}]
    )
    def test_external_volumes(self, volume):
        only(
            "external_volumes",
            {"services": {"web": {"image": "x", "volumes": ["v:/v"]}}, "volumes": {"v": volume}},
        )

    @pytest.mark.parametrize("network", [{"external": True}, {"name": "proxy"}])
    def test_external_networks(self, network):
        only(
            "external_networks",
            {"services": {"web": {"image": "x", "networks": ["n"]}}, "networks": {"n": network}},
        )

    def test_host_network_as_external_network(self):
        found = rules(
            {
                "services": {"web": {"image": "x", "networks": ["host"]}},
                "networks": {"host": {"external": True}},
            }
        )
        assert found == {"external_networks"}

    @pytest.mark.parametrize(
        ("network", "rule"),
        [
            ({"driver": "macvlan"}, "network_driver"),
            ({"driver": "host"}, "network_driver"),
            (
                {"driver_opts": {"com.docker.network.bridge.host_binding_ipv4": "0.0.0.0"}},
                "network_driver",
            ),
        ],
    )
    def test_network_drivers(self, network, rule):
        only(rule, {"services": {"web": {"image": "x"}}, "networks": {"n": network}})


class TestExceptions:
    EVIL = {
        "services": {
            "web": {
                "image": "x",
                "privileged": True,
                "cap_add": ["NET_ADMIN"],
                "volumes": ["/srv:/srv", "/var/run/docker.sock:/d"],
            }
        }
    }

    def test_exception_allows_only_the_named_rule(self):
        assert rules(self.EVIL) == {"privileged", "cap_add", "bind_mounts", "docker_socket"}
        assert rules(self.EVIL, allowed={"privileged"}) == {
            "cap_add",
            "bind_mounts",
            "docker_socket",
        }
        assert rules(self.EVIL, allowed={"bind_mounts"}) == {
            "privileged",
            "cap_add",
            "docker_socket",
        }

    def test_all_exceptions_allow_everything(self):
        assert rules(self.EVIL, allowed=set(RULES)) == set()

    def test_unknown_rule_name_is_a_programming_error(self):
        project = load("services: {web: {image: x}}")
        with pytest.raises(ValueError, match="unknown policy rules: privilegd"):
            check_policy(project, allowed_exceptions={"privilegd"})


def test_every_message_names_service_key_and_rule():
    doc = {
        "services": {
            "web": {
                "image": "x",
                "privileged": True,
                "cap_add": ["X"],
                "devices": ["/dev/x"],
                "device_cgroup_rules": ["a"],
                "network_mode": "host",
                "pid": "host",
                "ipc": "host",
                "uts": "host",
                "userns_mode": "host",
                "volumes": ["/a:/a", "/var/run/docker.sock:/s"],
                "volumes_from": ["x"],
                "security_opt": ["seccomp:unconfined"],
                "sysctls": {"a": 1},
                "cgroup_parent": "x",
                "labels": {"io.berth.a": 1},
                "deploy": {"labels": ["io.berth.b"]},
            }
        },
    }
    project = load(__import__("yaml").safe_dump(doc))
    problems = check_policy(project)
    assert {p.rule for p in problems} == set(RULES) - {
        "port_interfaces",
        "external_volumes",
        "external_networks",
        "volume_driver",
        "network_driver",
        "runtime",
        "cgroupns",
    }
    for problem in problems:
        key = problem.path.removeprefix("services.web.")
        assert problem.message.startswith(f"service 'web': {key}: ")
        assert problem.message.endswith(f"(rule: {problem.rule})")
        assert problem.rule in RULES


def test_violations_helper_reports_paths():
    assert violations(web(privileged=True)) == [("privileged", "services.web.privileged")]
