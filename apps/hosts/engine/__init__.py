"""Berth's door to Docker: the only package that imports `docker`.

Everyone else calls `get_engine(host)`, types what it gets as `EngineDriver` (the
interface in `driver.py`; the driver itself is chosen by the host's kind in `kinds.py`)
and catches `EngineError`.
"""

from apps.hosts.engine.checks import CheckResult, HealthTest
from apps.hosts.engine.client import DockerEngine
from apps.hosts.engine.containers import (
    ContainerFile,
    ContainerRequest,
    ContainerStatus,
    HealthcheckRequest,
    HostPolicy,
    Mount,
    PortBinding,
    checked_config,
    host_config,
)
from apps.hosts.engine.diskprobe import DiskUsage
from apps.hosts.engine.driver import EngineDriver, EngineInfo, ManagedContainer
from apps.hosts.engine.errors import EngineError
from apps.hosts.engine.kinds import DRIVERS, SINGLE_ENGINE, SWARM, get_engine
from apps.hosts.engine.labels import (
    INSTALLATION_LABEL,
    LABEL_PREFIX,
    MANAGED_LABEL,
    foreign_owner,
    installation_id,
    label_key,
    managed_labels,
)
from apps.hosts.engine.swarm import (
    AVAILABILITIES,
    ClusterState,
    SwarmCluster,
    SwarmInfo,
    SwarmNodeInfo,
    SwarmServiceInfo,
    SwarmTaskInfo,
)
from apps.hosts.engine.swarm_logs import SwarmTaskLogs, swarm_task_logs
from apps.hosts.engine.swarm_services import (
    SPEC_HASH_LABEL,
    RolloutConfig,
    ServiceNetwork,
    ServicePort,
    SwarmServiceRequest,
    service_spec,
)
from apps.hosts.engine.tls import forget_tls_files

__all__ = [
    "AVAILABILITIES",
    "SWARM",
    "ClusterState",
    "SwarmCluster",
    "SwarmInfo",
    "SwarmNodeInfo",
    "SwarmTaskInfo",
    "SwarmServiceInfo",
    "SwarmTaskLogs",
    "swarm_task_logs",
    "SPEC_HASH_LABEL",
    "RolloutConfig",
    "ServiceNetwork",
    "ServicePort",
    "SwarmServiceRequest",
    "service_spec",
    "INSTALLATION_LABEL",
    "LABEL_PREFIX",
    "MANAGED_LABEL",
    "CheckResult",
    "ContainerFile",
    "ContainerRequest",
    "ContainerStatus",
    "HealthTest",
    "HealthcheckRequest",
    "HostPolicy",
    "Mount",
    "PortBinding",
    "checked_config",
    "host_config",
    "DRIVERS",
    "SINGLE_ENGINE",
    "DockerEngine",
    "DiskUsage",
    "EngineDriver",
    "EngineError",
    "EngineInfo",
    "ManagedContainer",
    "foreign_owner",
    "forget_tls_files",
    "installation_id",
    "get_engine",
    "label_key",
    "managed_labels",
]
