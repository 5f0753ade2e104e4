"""Service keys other than ports and volumes: each syntax, each error message."""

import pytest

from apps.compose.spec import (
    Dependency,
    Healthcheck,
    Resources,
    RestartPolicy,
    ServiceNetwork,
    UpdateConfig,
)

from .helpers import load, refused, service, service_refused


class TestImageAndCommands:
    @pytest.mark.parametrize(
        "image",
        [
            "nginx",
            "nginx:1.25-alpine",
            "library/nginx",
            "ghcr.io/org/app:v1",
            "localhost:5000/app",
            "registry.example.com:5000/a/b/c:tag_1.0",
            "busybox@sha256:" + "0" * 64,
            "my-registry.local/app_name:latest",
        ],
    )
    def test_valid_images(self, image):
        assert service({"image": image}).image == image

    @pytest.mark.parametrize(
        "image",
        ["", "UPPER", "a b", "nginx:", "x:tag with space", 5, "a@sha256:short", "-bad", "x" * 600],
    )
    def test_invalid_images(self, image):
        assert service_refused({"image": image}).startswith("service 'web': image:")

    def test_image_is_required(self):
        messages = refused({"services": {"web": {"command": "x"}}})
        assert messages == [
            "service 'web': image: is required (Berth runs images, it does not build them)"
        ]

    def test_command_string_is_split_like_a_shell(self):
        spec = service({"command": "sh -c 'echo hello world'", "entrypoint": ["/init", 5]})
        assert spec.command == ("sh", "-c", "echo hello world")
        assert spec.entrypoint == ("/init", "5")

    def test_empty_entrypoint_is_kept(self):
        assert service({"entrypoint": []}).entrypoint == ()
        assert service({}).entrypoint is None

    def test_bad_commands(self):
        assert "cannot split" in service_refused({"command": "echo 'unclosed"})
        assert "command[1]" in service_refused({"command": ["a", ["b"]]})
        assert "expected a list" in service_refused({"entrypoint": {"a": 1}})


class TestEnvironmentAndLabels:
    def test_environment_list_and_map(self):
        assert service({"environment": ["A=1", "B=x=y", "C", "D="]}).environment == {
            "A": "1",
            "B": "x=y",
            "C": None,
            "D": "",
        }
        assert service({"environment": {"A": 1, "B": True, "C": None, "D": 1.5}}).environment == {
            "A": "1",
            "B": "true",
            "C": None,
            "D": "1.5",
        }

    def test_environment_values_are_interpolated(self):
        spec = service({"environment": {"URL": "http://${HOST:-api}:${PORT}"}}, PORT=80)
        assert spec.environment == {"URL": "http://api:80"}

    @pytest.mark.parametrize(
        ("env", "needle"),
        [
            (["=x"], "invalid name"),
            (["A B=1"], "invalid name"),
            ({"A": [1]}, "environment.A"),
            ({"A": {"b": 1}}, "expected a string"),
            (["A=1", "A=2"], "'A' is given twice"),
            ("A=1", "expected a mapping"),
            ([1], "expected a 'KEY=value' string"),
        ],
    )
    def test_bad_environment(self, env, needle):
        assert needle in service_refused({"environment": env})

    def test_env_file_is_refused_with_a_hint(self):
        message = service_refused({"env_file": ".env"})
        assert message == (
            "service 'web': key 'env_file' is not supported by Berth: put the variables in "
            "'environment' instead"
        )

    def test_labels(self):
        assert service({"labels": ["a=b", "c"]}).labels == {"a": "b", "c": ""}
        assert service({"labels": {"a": "b", "n": 5, "e": None}}).labels == {
            "a": "b",
            "n": "5",
            "e": "",
        }

    def test_sysctls(self):
        spec = service({"sysctls": ["net.core.somaxconn=1024"]})
        assert spec.sysctls == {"net.core.somaxconn": "1024"}
        assert "needs a value" in service_refused({"sysctls": ["net.core.somaxconn"]})


class TestNetworksAndDependencies:
    def test_networks_list_and_map(self):
        project = load(
            """
            services:
              web:
                image: nginx
                networks:
                  front: {aliases: [www, www.example.test]}
                  back:
              api: {image: api, networks: [back, default]}
            networks: {front: {}, back: null}
            """
        )
        assert project.services["web"].networks == {
            "front": ServiceNetwork(("www", "www.example.test")),
            "back": ServiceNetwork(),
        }
        assert set(project.services["api"].networks) == {"back", "default"}

    def test_undefined_network(self):
        messages = refused({"services": {"web": {"image": "x", "networks": ["nope"]}}})
        assert messages == ["service 'web': networks: uses undefined network 'nope'"]

    @pytest.mark.parametrize(
        ("networks", "needle"),
        [
            ({"n": {"ipv4_address": "1.2.3.4"}}, "key 'ipv4_address' is not supported"),
            ({"n": {"aliases": ["bad alias"]}}, "invalid network alias"),
            (["bad name"], "invalid network name"),
            ({"n": 5}, "expected a mapping"),
        ],
    )
    def test_bad_service_networks(self, networks, needle):
        assert needle in service_refused({"networks": networks})

    def test_depends_on_forms(self):
        project = load(
            """
            services:
              web:
                image: x
                depends_on:
                  db: {condition: service_healthy}
                  init: {condition: service_completed_successfully, restart: true}
                  cache: {condition: service_started, required: false}
              api: {image: x, depends_on: [db]}
              db: {image: x}
              init: {image: x}
              cache: {image: x}
            """
        )
        assert project.services["web"].depends_on == {
            "db": Dependency("service_healthy"),
            "init": Dependency("service_completed_successfully", restart=True),
            "cache": Dependency("service_started", required=False),
        }
        assert project.services["api"].depends_on == {"db": Dependency()}

    @pytest.mark.parametrize(
        ("deps", "needle"),
        [
            ({"db": {"condition": "ready"}}, "expected one of service_started"),
            ({"db": {"when": 1}}, "key 'when' is not supported"),
            (["db", "db"], "listed twice"),
            ("db", "expected a mapping"),
        ],
    )
    def test_bad_depends_on(self, deps, needle):
        messages = refused(
            {"services": {"web": {"image": "x", "depends_on": deps}, "db": {"image": "x"}}}
        )
        assert len(messages) == 1 and needle in messages[0]


class TestHealthcheckAndLifecycle:
    @pytest.mark.parametrize(
        ("test", "expected"),
        [
            ("curl -f http://localhost/", ("CMD-SHELL", "curl -f http://localhost/")),
            (["CMD", "wget", "-q", "localhost"], ("CMD", "wget", "-q", "localhost")),
            (["CMD-SHELL", "exit 0"], ("CMD-SHELL", "exit 0")),
            (["NONE"], ("NONE",)),
        ],
    )
    def test_healthcheck_tests(self, test, expected):
        assert service({"healthcheck": {"test": test}}).healthcheck.test == expected

    def test_healthcheck_timings(self):
        check = service(
            {
                "healthcheck": {
                    "test": "true",
                    "interval": "1m30s",
                    "timeout": "5s",
                    "retries": 3,
                    "start_period": "500ms",
                    "start_interval": "1s",
                }
            }
        ).healthcheck
        assert check == Healthcheck(("CMD-SHELL", "true"), 90.0, 5.0, 0.5, 1.0, 3)

    def test_disable(self):
        check = service({"healthcheck": {"disable": True}}).healthcheck
        assert check.test == ("NONE",) and check.disabled

    @pytest.mark.parametrize(
        ("check", "needle"),
        [
            ({"test": ["wget"]}, "must start with 'CMD'"),
            ({"test": ["CMD"]}, "needs the command"),
            ({"test": ["NONE", "x"]}, "takes no arguments"),
            ({"test": ["CMD-SHELL", "a", "b"]}, "exactly one"),
            ({"interval": "30"}, "use a unit"),
            ({"retries": -1}, "out of range"),
            ({"disable": True, "test": "x"}, "cannot be set"),
            ({"foo": 1}, "key 'foo' is not supported"),
            ({"test": []}, "must start with"),
        ],
    )
    def test_bad_healthchecks(self, check, needle):
        message = service_refused({"healthcheck": check})
        assert message.startswith("service 'web': healthcheck") and needle in message

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("no", RestartPolicy("no")),
            ("always", RestartPolicy("always")),
            ("on-failure", RestartPolicy("on-failure")),
            ("on-failure:3", RestartPolicy("on-failure", 3)),
            ("unless-stopped", RestartPolicy("unless-stopped")),
        ],
    )
    def test_restart(self, value, expected):
        assert service({"restart": value}).restart == expected

    @pytest.mark.parametrize("value", ["sometimes", "always:3", False, "on-failure:x", 1])
    def test_bad_restart(self, value):
        assert "invalid restart policy" in service_refused({"restart": value})

    def test_user_workdir_grace(self):
        spec = service({"user": 1000, "working_dir": "/app", "stop_grace_period": "1m"})
        assert (spec.user, spec.working_dir, spec.stop_grace_period) == ("1000", "/app", 60.0)
        assert "absolute path" in service_refused({"working_dir": "app"})
        assert "use a unit" in service_refused({"stop_grace_period": 10})

    def test_grace_is_capped_by_the_platform(self, settings):
        """A stop waits out the grace period while holding a worker: days are refused."""
        assert service({"stop_grace_period": "2m"}).stop_grace_period == 120.0
        message = service_refused({"stop_grace_period": "2m1s"})
        assert message.startswith("service 'web': stop_grace_period:"), message
        assert "at most 120s" in message and "BERTH_MAX_STOP_GRACE_SECONDS" in message
        assert "too long" in service_refused({"stop_grace_period": "${G}"}, G="168h")
        settings.BERTH_MAX_STOP_GRACE_SECONDS = 5
        assert "at most 5s" in service_refused({"stop_grace_period": "6s"})
        assert service({"stop_grace_period": "5s"}).stop_grace_period == 5.0


class TestResources:
    def test_limits(self):
        spec = service({"cpus": "0.5", "mem_limit": "512M", "mem_reservation": "128m"})
        assert (spec.cpus, spec.mem_limit, spec.mem_reservation) == (0.5, 512 * 2**20, 128 * 2**20)

    @pytest.mark.parametrize(
        ("body", "needle"),
        [
            ({"cpus": 0}, "out of range"),
            ({"cpus": "lots"}, "expected a number"),
            ({"mem_limit": "512X"}, "invalid size"),
            ({"mem_limit": -1}, "invalid size"),
            ({"mem_limit": "1m", "mem_reservation": "2m"}, "larger than mem_limit"),
        ],
    )
    def test_bad_limits(self, body, needle):
        assert needle in service_refused(body)

    def test_deploy(self):
        spec = service(
            {
                "deploy": {
                    "replicas": 3,
                    "resources": {
                        "limits": {"cpus": "1.5", "memory": "1G", "pids": 200},
                        "reservations": {"cpus": 0.25, "memory": "256M"},
                    },
                    "update_config": {
                        "parallelism": 1,
                        "delay": "10s",
                        "order": "start-first",
                        "failure_action": "rollback",
                        "monitor": "30s",
                        "max_failure_ratio": 0,
                    },
                    "placement": {
                        "constraints": ["node.role == manager", "node.labels.zone!=eu"],
                        "preferences": [{"spread": "node.labels.zone"}],
                        "max_replicas_per_node": 2,
                    },
                    "labels": {"team": "a"},
                }
            }
        )
        deploy = spec.deploy
        assert spec.replicas == 3
        assert deploy.limits == Resources(1.5, 2**30, 200)
        assert deploy.reservations == Resources(0.25, 256 * 2**20)
        assert deploy.update_config == UpdateConfig(1, 10.0, "start-first", "rollback", 30.0, 0.0)
        assert deploy.placement_constraints == ("node.role == manager", "node.labels.zone!=eu")
        assert deploy.placement_preferences == ("node.labels.zone",)
        assert deploy.max_replicas_per_node == 2
        assert deploy.labels == {"team": "a"}

    def test_replicas_default_and_interpolated(self):
        assert service({}).replicas == 1
        assert service({"deploy": {"replicas": "${N}"}}, N=4).replicas == 4
        assert service({"deploy": {"replicas": 0}}).replicas == 0

    @pytest.mark.parametrize(
        ("deploy", "needle"),
        [
            ({"replicas": 101}, "out of range"),
            ({"replicas": "x"}, "whole number"),
            ({"mode": "global"}, "deploy.mode: key 'mode' is not supported by Berth"),
            ({"resources": {"limits": {"memory": "x"}}}, "deploy.resources.limits.memory"),
            ({"resources": {"reservations": {"pids": 5}}}, "key 'pids' is not supported"),
            ({"resources": {"reservations": {"devices": []}}}, "key 'devices' is not supported"),
            ({"update_config": {"order": "random"}}, "expected one of stop-first"),
            ({"update_config": {"failure_action": "explode"}}, "expected one of continue"),
            ({"update_config": {"delay": 5}}, "use a unit"),
            ({"update_config": {"max_failure_ratio": 2}}, "out of range"),
            ({"placement": {"constraints": ["zone eu"]}}, "invalid constraint"),
            ({"placement": {"preferences": {"spread": "x"}}}, "must be a list"),
            ({"placement": {"preferences": [{"spread": "zone; rm"}]}}, "spread must name"),
            ({"placement": {"preferences": [{"binpack": "x"}]}}, "key 'binpack'"),
            ({"placement": {"max_replicas_per_node": 0}}, "out of range"),
            ({"placement": {"mode": "x"}}, "key 'mode' is not supported"),
            ({"restart_policy": {}}, "key 'restart_policy' is not supported"),
        ],
    )
    def test_bad_deploy(self, deploy, needle):
        message = service_refused({"deploy": deploy})
        assert message.startswith("service 'web': deploy") and needle in message


class TestSecurityKeysAreParsed:
    def test_values_are_kept_for_the_policy(self):
        spec = service(
            {
                "privileged": "yes",
                "cap_add": ["net_admin", "CAP_SYS_ADMIN"],
                "cap_drop": ["ALL"],
                "devices": [
                    "/dev/fuse",
                    {"source": "/dev/sda", "target": "/dev/xvda", "permissions": "rwm"},
                ],
                "device_cgroup_rules": ["c 1:3 mr"],
                "network_mode": "none",
                "pid": "host",
                "ipc": "shareable",
                "uts": "host",
                "userns_mode": "host",
                "volumes_from": ["db:ro"],
                "security_opt": ["label=disable"],
                "cgroup_parent": "/x",
            }
        )
        assert spec.privileged is True
        assert spec.cap_add == ("NET_ADMIN", "SYS_ADMIN") and spec.cap_drop == ("ALL",)
        assert spec.devices == ("/dev/fuse", "/dev/sda:/dev/xvda:rwm")
        assert (spec.pid, spec.ipc, spec.uts, spec.userns_mode) == (
            "host",
            "shareable",
            "host",
            "host",
        )
        assert spec.volumes_from == ("db:ro",) and spec.security_opt == ("label=disable",)

    @pytest.mark.parametrize(
        ("body", "needle"),
        [
            ({"privileged": "maybe"}, "expected true or false"),
            ({"privileged": 1}, "true or false"),
            ({"cap_add": "SYS_ADMIN"}, "expected a list"),
            ({"cap_add": ["sys admin"]}, "capability"),
            ({"devices": [""]}, "cannot be empty"),
            ({"devices": [{"src": "x"}]}, "not supported"),
            ({"network_mode": ""}, "non-empty"),
            ({"pid": ["host"]}, "expected a string"),
            ({"network_mode": "none", "networks": ["default"]}, "cannot be combined"),
            ({"network_mode": "none", "ports": ["80"]}, "cannot be published"),
        ],
    )
    def test_bad_security_values(self, body, needle):
        assert needle in service_refused(body)


class TestUnknownKeys:
    @pytest.mark.parametrize(
        "key",
        [
            "foo",
            "build",
            "container_name",
            "tmpfs",
            "ulimits",
            "cgroup",
            "runtime",
            "extra_hosts",
            "links",
            "logging",
            "gpus",
            "scale",
        ],
    )
    def test_unknown_service_key_named_with_service(self, key):
        message = service_refused({key: "x"})
        assert message.startswith(f"service 'web': key '{key}' is not supported by Berth")

    def test_extensions_are_kept(self):
        assert service({"x-berth": {"route": "/"}}).extensions == {"x-berth": {"route": "/"}}

    def test_all_problems_reported_at_once(self):
        messages = refused(
            {"services": {"web": {"image": "x", "foo": 1, "bar": 2, "ports": ["bad"]}}}
        )
        assert len(messages) == 3
