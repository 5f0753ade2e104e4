"""The stack page's container table: each row worked out once, then written as HTML.

Why not a template loop: the table has a row per container (a hundred and more on a
big stack), and the live page fetches the status part again on every container event.
Django's template engine costs microseconds per node: an `{% include %}` of the actions
and of the health badge in every row, `{% url %}` for each of its seven links, the port
tag and the filters made the table a third of the page's time; printing precomputed
values in a template loop still cost 9 ms for 100 rows. So, as NetBox's tables do, the
rows are built in Python: `container_rows` reads the containers with `values()` (no
model instances, only the columns shown) into plain dicts, and `render_rows` writes
them with `str.format`, every value escaped with `html.escape` (what Django's `escape`
calls): about 2 ms. The markup of a row is `_ROW` and the pieces after it;
`templates/deployments/partials/_stack_status.html` holds the table around them.
"""

from __future__ import annotations

import html
from types import SimpleNamespace
from typing import Any

from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from apps.deployments.ports import port_url
from apps.deployments.swarm_tasks import ACTIONS_REFUSED, UNKNOWN_NODE, reach_problem
from apps.hosts.models import SwarmNode

# The links of each container row, by route name (one pk argument each).
CONTAINER_LINKS = {
    "inspect": "resources:container_inspect",
    "logs": "stacks:container_logs",
    "shell": "stacks:shell",
    "start": "stacks:container_start",
    "stop": "stacks:container_stop",
    "restart": "stacks:container_restart",
    "remove": "stacks:container_remove",
}
_MARKER = "987654321"

_BADGES = {
    "healthy": "badge-success",
    "deploying": "badge-info",
    "starting": "badge-info",
    "stopping": "badge-info",
    "removing": "badge-info",
    "degraded": "badge-warning",
    "unhealthy": "badge-warning",
    "failed": "badge-danger",
}

_COLUMNS = (
    "pk",
    "name",
    "replica",
    "revision",
    "state",
    "exit_code",
    "user_stopped",
    "health",
    "health_reason",
    "ports",
    "restart_count",
    "host_id",
    "host__name",
    "host__endpoint",
    "host__labels",
    "host__kind",
    "node__hostname",
    "node__is_endpoint",
    "node__engine_endpoint",
    "node__engine_verified_at",
    "service__name",
)


def badge_class(value: Any) -> str:
    """The colour of a state or health badge (`_state_badge.html` and the rows use it)."""
    return _BADGES.get(str(value), "badge-muted")


def link_patterns() -> dict[str, str]:
    """Each container link reversed once, with a marker where the pk goes."""
    return {key: reverse(name, args=[_MARKER]) for key, name in CONTAINER_LINKS.items()}


def port_text(port: dict[str, Any]) -> str:
    """ "127.0.0.1:8080→80", "8080→80/udp", "443": a published port as the table shows it."""
    text = str(port.get("container_port", ""))
    if port.get("protocol") and port["protocol"] != "tcp":
        text = f"{text}/{port['protocol']}"
    if port.get("host_port"):
        ip = port.get("host_ip") or ""
        text = f"{ip}{':' if ip else ''}{port['host_port']}→{text}"
    return text


def container_rows(containers, request_host: str = "") -> list[dict[str, Any]]:
    """One dict per container of `containers` (a queryset of the stack's containers),
    in service then replica order, with everything its row shows: texts, the health
    badge, the ports with their links (`request_host`: the name the browser used) and
    the row's action URLs. A constant number of queries (one) whatever the rows."""
    patterns = link_patterns()
    hosts: dict[int, SimpleNamespace] = {}
    rows = []
    for row in containers.order_by("service__name", "replica").values(*_COLUMNS):
        pk, state = str(row["pk"]), row["state"]
        host = hosts.get(row["host_id"])
        if host is None:
            host = hosts[row["host_id"]] = SimpleNamespace(
                name=row["host__name"], endpoint=row["host__endpoint"], labels=row["host__labels"]
            )
        reason = row["health_reason"]
        swarm = row["host__kind"] == "swarm"
        row.update(
            swarm=swarm,
            node=row["node__hostname"] or (UNKNOWN_NODE if swarm else ""),
            unreachable=reach_problem(
                "shell",
                swarm=swarm,
                node=row["node__hostname"],
                endpoint=SwarmNode.engine_reached(
                    row["node__is_endpoint"],
                    row["node__engine_endpoint"],
                    row["node__engine_verified_at"],
                ),
            ),
            service=row["service__name"],
            host=host.name,
            state_text=state or "—",
            exit=row["exit_code"] if state != "running" else None,
            badge=badge_class(row["health"]),
            health_note=Truncator(reason).chars(120) if reason and state == "running" else "",
            ports=[
                {"url": port_url(host, port, request_host) or "", "text": port_text(port)}
                for port in row["ports"] or ()
            ],
            running=state == "running",
            active=state in ("running", "restarting"),
            links={key: url.replace(_MARKER, pk) for key, url in patterns.items()},
        )
        rows.append(row)
    return rows


# One row of the table (its cells in the order of the table's head), then its pieces.
# Every {} gets an escaped value (`_e`), a piece below, or "".
_ROW = (
    '<tr data-container-id="{pk}" data-state="{state}" data-name="{name}"{no_stats}>\n'
    '<td><a href="{inspect}" class="mono" title="Inspect {name}">{name}</a><br>'
    '<small class="muted">{service} #{replica} · r{revision}</small></td>\n'
    "<td>{state_text}{exit}{stopped}</td>\n"
    "<td>{health}{health_note}</td>\n"
    '<td class="mono">{ports}</td>\n'
    '<td class="num">{restart_count}</td>\n'
    "<td>{host}{node}</td>\n"
    '<td><div class="container-actions">\n'
    '<a href="{logs}" class="small">Logs</a>{actions}\n</div></td>\n'
    "</tr>"
)
_EXIT = ' <small class="muted">(exit {})</small>'
_STOPPED = ' <small class="muted">stopped by a user</small>'
_BADGE = '<span class="badge state-{0} {1}">{0}</span>'
_NOTE = '<br><small class="muted">{}</small>'
_PORT_LINK = '<a href="{0}" target="_blank" rel="noopener" data-port-link title="Open {0}">{1}</a>'
_SHELL = '\n<a href="{}" class="small" target="_blank" rel="noopener">Shell</a>'
# A Swarm task: its node under the host; what is not offered for it, and why (title).
_NODE = '<br><small class="muted" data-node>node {}</small>'
_NO_STATS = ' data-stats="off"'
_NO_SHELL = '\n<small class="muted" data-no-shell title="{}">No shell</small>'
_SWARM_TASK = '\n<small class="muted" data-swarm-task title="{}">Kept by Swarm</small>'
_BUTTON = (
    '\n<button type="button" class="small {kind}" hx-post="{url}" hx-confirm="{question}" '
    'hx-swap="none">{label}</button>'
)
# (label, link, button class, what hx-confirm asks: {} is the container's name)
_STOP = ("Stop", "stop", "secondary outline", "Stop {}? It stays stopped until you start it.")
_RESTART = ("Restart", "restart", "secondary outline", "Restart {}?")
_START = ("Start", "start", "secondary outline", "Start {}?")
_REMOVE = (
    "Remove",
    "remove",
    "danger outline",
    "Remove {}? The reconciler creates a fresh container for its replica.",
)


def _e(value: Any) -> str:
    """Escaped for HTML text and quoted attributes, as Django's `escape` does."""
    return html.escape(str(value))


def _actions(row: dict[str, Any], name: str, can_act: bool, change: bool) -> str:
    """The row's buttons after Logs (`name`: escaped): Shell for a running container
    (members and up), then Stop and Restart (or Start) and Remove unless the stack is
    being removed. A Swarm task gets no buttons Swarm would refuse: a note says why
    (its title), and so does "No shell" for one on a node whose engine Berth lacks."""
    if not can_act:
        return ""
    links, html_ = row["links"], ""
    if row["running"]:
        if row["unreachable"]:
            html_ += _NO_SHELL.format(_e(row["unreachable"]))
        else:
            html_ += _SHELL.format(_e(links["shell"]))
    if row["swarm"]:
        refused = ACTIONS_REFUSED.format(name=row["name"], verb="stopped or restarted")
        return html_ + _SWARM_TASK.format(_e(refused))
    if change:
        buttons = ((_STOP, _RESTART) if row["active"] else (_START,)) + (_REMOVE,)
        for label, link, kind, question in buttons:
            html_ += _BUTTON.format(
                kind=kind, url=_e(links[link]), question=question.format(name), label=label
            )
    return html_


def _ports(row: dict[str, Any]) -> str:
    cells = [
        _PORT_LINK.format(_e(port["url"]), _e(port["text"])) if port["url"] else _e(port["text"])
        for port in row["ports"]
    ]
    return ", ".join(cells) or "—"


def render_rows(rows: list[dict[str, Any]], *, can_act: bool, change: bool) -> SafeString:
    """The `<tr>`s of `container_rows`, every value escaped: `can_act` (member and up)
    shows Shell and the buttons, `change` (the stack is not being removed) the ones that
    change a container."""
    html_rows = []
    for row in rows:
        links, name, health, note = row["links"], _e(row["name"]), row["health"], row["health_note"]
        html_rows.append(
            _ROW.format(
                pk=_e(row["pk"]),
                state=_e(row["state"]),
                name=name,
                inspect=_e(links["inspect"]),
                service=_e(row["service"]),
                replica=_e(row["replica"]),
                revision=_e(row["revision"]),
                state_text=_e(row["state_text"]),
                exit=_EXIT.format(_e(row["exit"])) if row["exit"] is not None else "",
                stopped=_STOPPED if row["user_stopped"] else "",
                health=_BADGE.format(_e(health), row["badge"]) if health else "—",
                health_note=_NOTE.format(_e(note)) if note else "",
                ports=_ports(row),
                restart_count=_e(row["restart_count"]),
                host=_e(row["host"]),
                node=_NODE.format(_e(row["node"])) if row["swarm"] else "",
                no_stats=_NO_STATS if row["unreachable"] else "",
                logs=_e(links["logs"]),
                actions=_actions(row, name, can_act, change),
            )
        )
    return mark_safe("\n".join(html_rows))  # noqa: S308 - every value escaped above
