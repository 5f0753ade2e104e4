"""From a Revision's spec to what the driver needs: names, labels and container requests.

Kept apart from the reconciler's control flow so the mapping from Compose keys to the
Engine API is in one readable place.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection, Mapping
from typing import Any

from django.conf import settings

from apps.compose.files import DEFAULT_MODES
from apps.compose.spec import ComposeProject, ServiceSpec
from apps.deployments import secret_store
from apps.deployments.planner import DesiredService, DesiredStack
from apps.deployments.resources import service_resources
from apps.deployments.spec import service_hash, upgrade_of
from apps.hosts.engine import (
    INSTALLATION_LABEL,
    MANAGED_LABEL,
    ContainerFile,
    ContainerRequest,
    EngineError,
    HealthcheckRequest,
    HostPolicy,
    Mount,
    PortBinding,
    installation_id,
    label_key,
    managed_labels,
)

SERVICE = label_key("service")
REPLICA = label_key("replica")
REVISION = label_key("revision")
SPEC_HASH = label_key("spec-hash")
STACK = label_key("stack")
TENANT = label_key("tenant")
TENANT_ID = label_key("tenant-id")
ENVIRONMENT_ID = label_key("environment-id")
CREATED_AT = label_key("created-at")

# Engine names are built from database ids and this installation's id, never from slugs
# or stack names alone: "berth-<installation>-s<stack id>-..." cannot be produced by
# another stack, tenant or installation, whatever names and slugs they choose (the
# installation id has no hyphen; the stack id ends at the next hyphen).


def _prefix() -> str:
    return f"berth-{installation_id()}"


def network_name(stack: Any) -> str:
    """One network per environment: its stacks reach each other as `<service>.<stack>`."""
    return f"{_prefix()}-e{stack.environment_id}"


def stack_network_name(stack: Any) -> str:
    """One network per stack, where a bare service name means this stack's service.

    On the environment's network alone, two stacks with a service called `api` would
    answer to the same name, and one stack's frontend would reach the other's API.
    """
    return f"{_prefix()}-s{stack.pk}"


def environment_alias(stack: Any, service: str) -> str:
    return f"{service}.{stack.name}"


def volume_name(stack: Any, key: str) -> str:
    """The engine name of a stack's volume. Stacks deployed before names carried the
    installation keep their volumes (and data) under the old name: see `legacy`."""
    legacy = (getattr(stack, "legacy_volumes", None) or {}).get(key)
    return legacy or f"{_prefix()}-s{stack.pk}-{key}"


def stack_volumes(stack: Any, project: ComposeProject) -> dict[str, str]:
    """Volume key -> engine name, for the stack's own (not external) volumes."""
    return {
        key: volume_name(stack, key) for key, spec in project.volumes.items() if not spec.external
    }


def container_name(stack: Any, service: str, replica: int, suffix: bool = False) -> str:
    base = f"{_prefix()}-s{stack.pk}-{service}-{replica}"
    return f"{base}-{secrets.token_hex(3)}" if suffix else base


def environment_owner(stack: Any) -> dict[str, str]:
    """The labels that make an environment network this environment's."""
    return {
        INSTALLATION_LABEL: installation_id(),
        TENANT_ID: str(stack.tenant_id),
        ENVIRONMENT_ID: str(stack.environment_id),
    }


def stack_owner(stack: Any) -> dict[str, str]:
    """The labels that make a container, stack network or volume this stack's."""
    return {**environment_owner(stack), STACK: str(stack.pk)}


def environment_labels(stack: Any) -> dict[str, str]:
    """For the environment's network, shared by its stacks (so no stack id); the slugs
    are for people reading `docker inspect`, ownership is decided by the ids."""
    return {
        **managed_labels({"tenant": stack.tenant.slug, "environment": stack.environment.slug}),
        **environment_owner(stack),
    }


def stack_labels(stack: Any) -> dict[str, str]:
    return {**environment_labels(stack), **stack_owner(stack)}


def legacy_owner(stack: Any) -> dict[str, str]:
    """The labels a container, stack network or volume made before installation ids
    carries when it is this stack's (ids and slugs as they were; see `observe_legacy`)."""
    return {
        MANAGED_LABEL: "true",
        TENANT: stack.tenant.slug,
        label_key("environment"): stack.environment.slug,
        STACK: str(stack.pk),
    }


def legacy_container_prefix(stack: Any) -> str:
    return f"{stack.tenant.slug}-{stack.environment.slug}-{stack.name}-"


def legacy_stack_network_name(stack: Any) -> str:
    return f"berth-{stack.tenant.slug}-{stack.environment.slug}-{stack.name}-{stack.pk}"


def legacy_volume_name(stack_id: int, key: str) -> str:
    """How volumes were named before installation ids (kept for their data)."""
    return f"berth-{stack_id}-{key}"


def desired_stack(
    stack: Any, spec: dict, project: ComposeProject, routed: Collection[str] = ()
) -> DesiredStack:
    """The planner's view of the spec. `routed` names the services with a route (the
    template's or a person's): they roll start-first unless their settings say otherwise."""
    services = {
        name: DesiredService(
            name=name,
            hash=service_hash(spec, name),
            image=service.image,
            replicas=service.replicas,
            depends_on=_dependencies(service, project),
            update_order=_update_order(upgrade_of(spec, project, name), name in routed),
            batch_size=int(upgrade_of(spec, project, name)["batch_size"]),
        )
        for name, service in project.services.items()
    }
    return DesiredStack(
        services=services,
        state=stack.desired_state,
        network=network_name(stack),
        stack_network=stack_network_name(stack),
        volumes=tuple(sorted(stack_volumes(stack, project).values())),
    )


def _dependencies(service: ServiceSpec, project: ComposeProject) -> dict[str, str]:
    """depends_on, plus siblings whose container this one joins (`service:x` namespaces,
    `volumes_from`): those must exist first."""
    found = {dep: d.condition for dep, d in service.depends_on.items()}
    joined = set(service.service_references()) | {
        entry.partition(":")[0]
        for entry in service.volumes_from
        if not entry.startswith("container:")
    }
    for name in joined:
        if name in project.services and name != service.name:
            found.setdefault(name, "service_started")
    return found


def _update_order(upgrade: Mapping[str, Any], routed: bool) -> str:
    if upgrade.get("order_set") or not routed:
        return str(upgrade["order"])
    return "start-first"


def container_request(
    stack: Any,
    spec: dict,
    project: ComposeProject,
    service_name: str,
    replica: int,
    name: str,
    revision: int,
    siblings: Mapping[str, str] | None = None,
    store: Mapping[str, Mapping[str, Any]] | None = None,
) -> ContainerRequest:
    """Everything the driver sends for one replica; hardening from the spec's defaults.

    `siblings` maps this stack's service names (and its containers' engine names) to the
    engine ids of its own containers: the only targets `service:`/`container:` namespace
    modes and `volumes_from` may resolve to (see `referenced_services`). `store` holds
    the environment's entries the stack uses (`secret_store.entries_for`): the service's
    secrets and configs become files written before the container starts.
    """
    siblings = siblings or {}
    service = project.services[service_name]
    hardening = spec.get("hardening") or {}
    volumes = stack_volumes(stack, project)
    environment = stack.environment
    resources = service_resources(spec, project, service_name)  # what the quota counted
    labels = {
        **service.labels,
        **service.deploy.labels,
        **stack_labels(stack),
        SERVICE: service_name,
        REPLICA: str(replica),
        REVISION: str(revision),
        SPEC_HASH: service_hash(spec, service_name),
        CREATED_AT: str(int(time.time())),
    }
    return ContainerRequest(
        name=name,
        image=service.image,
        network=stack_network_name(stack),
        aliases=(service_name, *_aliases(service)),
        extra_networks=((network_name(stack), (environment_alias(stack, service_name),)),),
        memory=resources.memory,
        pids_limit=resources.pids,
        log_max_size=str(hardening.get("log_max_size") or "10m"),
        log_max_files=int(hardening.get("log_max_files") or 3),
        command=service.command,
        entrypoint=service.entrypoint,
        env=service.environment,
        labels=labels,
        mounts=tuple(_mount(m, volumes) for m in service.volumes),
        ports=tuple(
            PortBinding(
                container_port=p.target,
                host_ip=p.host_ip or environment.publish_interface,
                host_port=p.published,
                protocol=p.protocol,
            )
            for p in service.ports
        ),
        exposed=tuple((e.port, e.protocol) for e in service.expose),
        healthcheck=_healthcheck(service),
        restart_policy=service.restart.name if service.restart else "no",
        restart_retries=service.restart.max_retries if service.restart else None,
        user=service.user,
        working_dir=service.working_dir,
        stop_timeout=_capped_grace(service.stop_grace_period),
        nano_cpus=int(resources.cpus * 1_000_000_000) if resources.cpus else None,
        memory_reservation=service.mem_reservation or limits_reservation(service),
        privileged=service.privileged,
        cap_add=service.cap_add,
        cap_drop=service.cap_drop,
        security_opt=service.security_opt,
        network_mode=_mode(service.network_mode, siblings, "network_mode"),
        pid_mode=_mode(service.pid, siblings, "pid"),
        ipc_mode=_mode(service.ipc, siblings, "ipc"),
        uts_mode=service.uts,
        userns_mode=service.userns_mode,
        devices=service.devices,
        device_cgroup_rules=service.device_cgroup_rules,
        sysctls=service.sysctls,
        cgroup_parent=service.cgroup_parent,
        volumes_from=tuple(_volumes_from(entry, siblings) for entry in service.volumes_from),
        files=container_files(service, store or {}),
        policy=HostPolicy(
            allowed_exceptions=allowed_exceptions(environment, spec),
            allowed_interfaces=frozenset({environment.publish_interface}),
            allowed_volumes=frozenset(volumes.values()),
            allowed_containers=frozenset(siblings.values()),
        ),
    )


def container_files(
    service: ServiceSpec, store: Mapping[str, Mapping[str, Any]]
) -> tuple[ContainerFile, ...]:
    """The service's secrets and configs as files, with the entries' current values."""
    files = []
    for kind, refs in (("secret", service.secrets), ("config", service.configs)):
        for ref in refs:
            entry = (store.get(kind) or {}).get(ref.source)
            if entry is None:
                raise EngineError(
                    f"Service {service.name}: the {kind} {ref.source} is not in the "
                    "environment's store.",
                    retryable=False,
                )
            try:
                data = secret_store.value_of(entry)
            except secret_store.StoreError as exc:
                raise EngineError(str(exc), retryable=False) from None
            files.append(
                ContainerFile(
                    path=ref.target,
                    data=data,
                    uid=int(ref.uid or 0),
                    gid=int(ref.gid or 0),
                    mode=DEFAULT_MODES[kind] if ref.mode is None else ref.mode,
                )
            )
    return tuple(files)


def allowed_exceptions(environment: Any, spec: dict) -> frozenset[str]:
    """The environment's exceptions, plus those a platform admin used on purpose when
    deploying this spec (`build_spec(allow_all=True)` records them; a member's scale or
    rollback of such a spec is refused by the service layer before it gets here)."""
    granted = spec.get("admin_exceptions") or ()
    return frozenset(environment.policy_exceptions or ()) | frozenset(granted)


def _capped_grace(seconds: float | None) -> int | None:
    """Compose's stop_grace_period, capped (a revision stored before the cap may ask more);
    0 stays 0 (stop means kill at once), only a missing value leaves Docker's default."""
    if seconds is None:
        return None
    return min(int(seconds), int(settings.BERTH_MAX_STOP_GRACE_SECONDS))


def referenced_services(service: ServiceSpec) -> set[str]:
    """The names a service's namespace modes and `volumes_from` point at (`service:x`,
    `container:x`): each must resolve to a container of the same stack."""
    found = set()
    for mode in (service.network_mode, service.pid, service.ipc):
        kind, _, target = (mode or "").partition(":")
        if kind in ("service", "container") and target:
            found.add(target)
    for entry in service.volumes_from:
        target = entry.partition(":")[2] if entry.startswith("container:") else entry
        found.add(target.partition(":")[0])
    return found


def _sibling(target: str, siblings: Mapping[str, str], field: str) -> str:
    found = siblings.get(target)
    if not found:
        raise EngineError(
            f"{field} refers to {target!r}, which is not a running container of this stack: "
            "only the stack's own services can be joined.",
            retryable=False,
        )
    return found


def _mode(mode: str | None, siblings: Mapping[str, str], field: str) -> str | None:
    """`service:x` and `container:x` become `container:<id of x's container in this
    stack>`; a name the engine would resolve elsewhere never reaches it."""
    kind, _, target = (mode or "").partition(":")
    if kind in ("service", "container"):
        return f"container:{_sibling(target, siblings, field)}"
    return mode


def _volumes_from(entry: str, siblings: Mapping[str, str]) -> str:
    """`service[:ro]` or `container:name[:ro]` as the engine's `<id>[:ro]`."""
    if entry.startswith("container:"):
        entry = entry.partition(":")[2]
    target, _, access = entry.partition(":")
    ident = _sibling(target, siblings, "volumes_from")
    return f"{ident}:{access}" if access else ident


def limits_reservation(service: ServiceSpec) -> int | None:
    return service.deploy.reservations.memory


def _aliases(service: ServiceSpec) -> tuple[str, ...]:
    return tuple(alias for net in service.networks.values() for alias in net.aliases)


def _mount(mount: Any, volumes: dict[str, str]) -> Mount:
    source = volumes.get(mount.source, mount.source) if mount.type == "volume" else mount.source
    return Mount(
        type=mount.type,
        target=mount.target,
        source=source,
        read_only=mount.read_only,
        nocopy=mount.nocopy,
        tmpfs_size=mount.tmpfs_size,
        tmpfs_mode=mount.tmpfs_mode,
    )


def _healthcheck(service: ServiceSpec) -> HealthcheckRequest | None:
    check = service.healthcheck
    if check is None:
        return None
    return HealthcheckRequest(
        test=check.test,
        interval=check.interval,
        timeout=check.timeout,
        start_period=check.start_period,
        retries=check.retries,
    )
