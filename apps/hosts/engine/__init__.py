"""Berth's door to Docker: the only package that imports `docker`.

Everyone else calls `get_engine(host)` and catches `EngineError`.
"""

from apps.hosts.engine.client import Engine, EngineInfo, ManagedContainer, get_engine
from apps.hosts.engine.containers import (
    ContainerRequest,
    ContainerStatus,
    HealthcheckRequest,
    HostPolicy,
    Mount,
    PortBinding,
    checked_config,
    host_config,
)
from apps.hosts.engine.errors import EngineError
from apps.hosts.engine.labels import (
    INSTALLATION_LABEL,
    LABEL_PREFIX,
    MANAGED_LABEL,
    foreign_owner,
    installation_id,
    label_key,
    managed_labels,
)
from apps.hosts.engine.tls import forget_tls_files

__all__ = [
    "INSTALLATION_LABEL",
    "LABEL_PREFIX",
    "MANAGED_LABEL",
    "ContainerRequest",
    "ContainerStatus",
    "HealthcheckRequest",
    "HostPolicy",
    "Mount",
    "PortBinding",
    "checked_config",
    "host_config",
    "Engine",
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
