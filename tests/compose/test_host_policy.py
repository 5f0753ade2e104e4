"""The second line of defence: the same rules on the Docker API HostConfig."""

import pytest

from apps.compose.policy import RULES, check_hardening, check_host_config

NETWORK = "berth_env_1"
SAFE = {
    "NetworkMode": NETWORK,
    "Binds": ["stack_data:/data:ro"],
    "Mounts": [
        {"Type": "volume", "Source": "stack_cache", "Target": "/cache"},
        {"Type": "tmpfs", "Target": "/tmp"},
    ],
    "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "81/tcp": None},
    "SecurityOpt": ["no-new-privileges:true"],
    "CapDrop": ["ALL"],
    "Memory": 256 * 2**20,
    "PidsLimit": 200,
    "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
    "RestartPolicy": {"Name": "unless-stopped"},
    "Privileged": False,
    "IpcMode": "private",
    "PidMode": "",
}


def check(extra: dict, **kwargs) -> set[str]:
    kwargs.setdefault("allowed_networks", {NETWORK})
    kwargs.setdefault("allowed_volumes", {"stack_data", "stack_cache"})
    return {p.rule for p in check_host_config({**SAFE, **extra}, **kwargs)}


def test_safe_config_passes():
    assert check({}) == set()
    assert check_hardening(SAFE) == []


@pytest.mark.parametrize(
    ("extra", "rule"),
    [
        ({"Privileged": True}, "privileged"),
        ({"CapAdd": ["SYS_ADMIN"]}, "cap_add"),
        ({"CapAdd": "SYS_ADMIN"}, "cap_add"),
        ({"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]}, "devices"),
        ({"DeviceRequests": [{"Driver": "nvidia", "Count": -1}]}, "devices"),
        ({"DeviceCgroupRules": ["a *:* rwm"]}, "device_cgroup_rules"),
        ({"NetworkMode": "host"}, "network_mode"),
        ({"NetworkMode": "container:other"}, "network_mode"),
        ({"NetworkMode": "bridge"}, "network_mode"),
        ({"NetworkMode": "default"}, "network_mode"),
        ({"NetworkMode": ""}, "network_mode"),
        ({"NetworkMode": "tenant_b_net"}, "network_mode"),
        ({"Links": ["other:alias"]}, "network_mode"),
        ({"PidMode": "host"}, "pid"),
        ({"PidMode": "container:x"}, "pid"),
        ({"IpcMode": "host"}, "ipc"),
        ({"UTSMode": "host"}, "uts"),
        ({"UsernsMode": "host"}, "userns_mode"),
        ({"CgroupnsMode": "host"}, "cgroupns"),
        ({"Binds": ["/srv:/srv"]}, "bind_mounts"),
        ({"Binds": ["/var/run/docker.sock:/var/run/docker.sock"]}, "docker_socket"),
        ({"Binds": ["/:/host:ro"]}, "docker_socket"),
        ({"Binds": ["tenant_b_data:/data"]}, "external_volumes"),
        ({"Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/etc"}]}, "bind_mounts"),
        (
            {"Mounts": [{"Type": "bind", "Source": "/run/docker.sock", "Target": "/s"}]},
            "docker_socket",
        ),
        ({"Mounts": [{"Type": "npipe", "Source": "x", "Target": "/x"}]}, "bind_mounts"),
        ({"Mounts": ["garbage"]}, "bind_mounts"),
        ({"Mounts": [{"Type": "volume", "Source": "other", "Target": "/x"}]}, "external_volumes"),
        (
            {
                "Mounts": [
                    {
                        "Type": "volume",
                        "Source": "stack_data",
                        "Target": "/x",
                        "VolumeOptions": {
                            "DriverConfig": {
                                "Name": "local",
                                "Options": {"o": "bind", "device": "/"},
                            }
                        },
                    }
                ]
            },
            "volume_driver",
        ),
        ({"VolumesFrom": ["db"]}, "volumes_from"),
        ({"SecurityOpt": ["seccomp=unconfined"]}, "security_opt"),
        ({"SecurityOpt": ["no-new-privileges:true", "apparmor=unconfined"]}, "security_opt"),
        ({"SecurityOpt": ["label=disable"]}, "security_opt"),
        ({"MaskedPaths": []}, "security_opt"),
        ({"ReadonlyPaths": []}, "security_opt"),
        ({"Sysctls": {"net.ipv4.ip_forward": "1"}}, "sysctls"),
        ({"CgroupParent": "/"}, "cgroup_parent"),
        ({"Cgroup": "container:x"}, "cgroup_parent"),
        ({"Runtime": "nvidia"}, "runtime"),
        ({"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "80"}]}}, "port_interfaces"),
        ({"PortBindings": {"80/tcp": [{"HostPort": "80"}]}}, "port_interfaces"),
        (
            {"PortBindings": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "80"}]}},
            "port_interfaces",
        ),
        ({"PortBindings": {"80/tcp": [{"HostIp": "::", "HostPort": "80"}]}}, "port_interfaces"),
        ({"PortBindings": {"80/tcp": [{"HostIp": "not-an-ip"}]}}, "port_interfaces"),
        ({"PortBindings": "80:80"}, "port_interfaces"),
        ({"PublishAllPorts": True}, "port_interfaces"),
    ],
)
def test_each_rule(extra, rule):
    assert check(extra) == {rule}


def test_same_stack_container_namespaces_are_allowed():
    extra = {"NetworkMode": "container:web-1", "PidMode": "container:web-1"}
    assert check(extra, allowed_containers={"web-1"}) == set()


def test_volume_check_is_optional():
    assert check({"Binds": ["anything:/x"]}, allowed_volumes=None) == set()


def test_allowed_interfaces_normalized():
    bindings = {"PortBindings": {"80/tcp": [{"HostIp": "0:0::1", "HostPort": "80"}]}}
    assert check(bindings, allowed_interfaces={"::1"}) == set()


def test_exceptions():
    extra = {"Privileged": True, "Binds": ["/srv:/srv"]}
    assert check(extra, allowed_exceptions={"privileged"}) == {"bind_mounts"}
    assert check(extra, allowed_exceptions=set(RULES)) == set()
    with pytest.raises(ValueError):
        check(extra, allowed_exceptions={"everything"})


def test_message_names_container_key_and_rule():
    problems = check_host_config(
        {**SAFE, "Privileged": True}, name="shop-web-1", allowed_networks={NETWORK}
    )
    assert [(p.path, p.message) for p in problems] == [
        (
            "HostConfig.Privileged",
            "container 'shop-web-1': Privileged: privileged mode is not allowed (rule: privileged)",
        )
    ]


def test_not_a_mapping_is_a_programming_error():
    with pytest.raises(TypeError):
        check_host_config(["Privileged"])


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"SecurityOpt": []}, "SecurityOpt"),
        ({"Memory": 0}, "Memory"),
        ({"PidsLimit": -1}, "PidsLimit"),
        ({"PidsLimit": None}, "PidsLimit"),
        ({"LogConfig": {"Type": "json-file", "Config": {}}}, "LogConfig"),
        ({"LogConfig": {"Type": "syslog"}}, "LogConfig"),
        ({"LogConfig": None}, "LogConfig"),
    ],
)
def test_hardening(change, key):
    problems = check_hardening({**SAFE, **change}, name="c")
    assert [p.path for p in problems] == [f"HostConfig.{key}"]
    assert problems[0].rule == "hardening"


def test_hardening_accepts_local_and_none_log_drivers():
    assert (
        check_hardening({**SAFE, "LogConfig": {"Type": "local", "Config": {"max-size": "5m"}}})
        == []
    )
    assert check_hardening({**SAFE, "LogConfig": {"Type": "none"}}) == []


def test_hardening_on_garbage():
    assert len(check_hardening("nonsense")) == 4
