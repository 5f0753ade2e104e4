"""Exceptions to the compose policy a stack uses: computed, recorded, confirmed, explained.

A platform admin may deploy what the tenant policy refuses (privileged mode, host
mounts...), and an environment may grant named rules. Neither should surprise anyone
later, so each Revision's spec records what it uses (spec["berth"]["exceptions"]: what,
where and who granted it), the stack page and the activity log show it, an admin must
confirm exceptions only their role grants before they are written, and a tenant member
who later meets them (scale, redeploy, rollback) is told why they are refused instead of
getting the policy error of a file they never wrote.

The functions on projects and lists are pure (unit-tested without a database);
`confirmed` carries the admin's confirmation from a form or an API request to the
service layer, which asks for it where a Revision is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from apps.compose.policy import policy_violations
from apps.compose.spec import ComposeProject

ADMIN = "platform admin"
ENVIRONMENT = "environment"
CONFIRM_FIELD = "confirm_exceptions"

_confirmed: ContextVar[bool] = ContextVar("berth_exceptions_confirmed", default=False)
# "privileged mode is not allowed" -> "privileged mode"; the socket's message says more.
_REFUSAL = re.compile(r"(,? and)?\s+(is|are) not allowed.*$|; allowed:.*$|: services join.*$")


def compute(
    project: ComposeProject, *, interface: str, granted: Iterable[str] = ()
) -> list[dict[str, str]]:
    """Every exception to the policy `project` needs, in a stable order, each as
    {"rule", "kind", "name", "what", "granted_by"}: `granted_by` is "environment" for
    the environment's rules (`granted`), else "platform admin"."""
    granted = frozenset(granted)
    found = []
    for kind, _section, name, violation in policy_violations(project, {interface}):
        entry = {
            "rule": violation.rule,
            "kind": kind,
            "name": name,
            "what": _REFUSAL.sub("", violation.message).strip(),
            "granted_by": ENVIRONMENT if violation.rule in granted else ADMIN,
        }
        if entry not in found:
            found.append(entry)
    return found


def of_spec(spec: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """The exceptions recorded on a spec (none for a spec stored before they were)."""
    return list(((spec or {}).get("berth") or {}).get("exceptions") or ())


def by_admin(exceptions: Iterable[Mapping[str, str]]) -> list[Mapping[str, str]]:
    return [e for e in exceptions if e.get("granted_by") == ADMIN]


def label(entry: Mapping[str, str]) -> str:
    """ "privileged mode (service web)"."""
    return f"{entry['what']} ({entry['kind']} {entry['name']})"


def describe(exceptions: Iterable[Mapping[str, str]]) -> str:
    """One sentence for the activity log and the stack page, grouped by who granted."""
    exceptions = list(exceptions)
    parts = []
    for who, words in (
        (ADMIN, "granted by a platform admin"),
        (ENVIRONMENT, "granted by the environment"),
    ):
        labels = [label(e) for e in exceptions if e.get("granted_by") == who]
        if labels:
            parts.append(f"{', '.join(labels)}, {words}")
    return "; ".join(parts)


def new_ones(
    after: Iterable[Mapping[str, str]], before: Iterable[Mapping[str, str]]
) -> list[Mapping[str, str]]:
    """Exceptions granted by a platform admin in `after` that `before` did not use:
    what an admin confirms (a redeploy keeping the same exceptions asks nothing)."""
    known = {_key(e) for e in by_admin(before)}
    return [e for e in by_admin(after) if _key(e) not in known]


def _key(entry: Mapping[str, str]) -> tuple[str, ...]:
    return (
        entry.get("rule", ""),
        entry.get("kind", ""),
        entry.get("name", ""),
        entry.get("what", ""),
    )


def confirmation_message(needed: Iterable[Mapping[str, str]]) -> str:
    return (
        "This compose file needs exceptions to the compose policy that only your platform "
        f"admin role grants: {', '.join(label(e) for e in needed)}. Tick “I confirm "
        "deploying with these exceptions” (API: confirm_exceptions: true) to deploy it."
    )


def refusal_message(needed: Iterable[Mapping[str, str]], *, revision: int | None = None) -> str:
    """What a tenant member reads instead of the policy error of a file they never wrote."""
    what = f"Revision r{revision} of this stack was" if revision else "This stack was"
    listed = ", ".join(f"{e['what']} on {e['kind']} {e['name']}" for e in needed)
    return (
        f"{what} deployed by a platform admin with exceptions to the compose policy "
        f"({listed}) that your environment does not grant; ask a platform admin to change it."
    )


def is_confirmed() -> bool:
    return _confirmed.get()


def confirm_in_this_request(flag: Any) -> None:
    """Set the confirmation inside an enclosing `confirmed(False)` block, which resets
    it when the request ends (the API reads the flag only after parsing the body)."""
    _confirmed.set(bool(flag))


@contextmanager
def confirmed(flag: Any = True) -> Iterator[None]:
    """Within this block, the acting platform admin confirmed the exceptions the change
    needs (the deploy form's checkbox, the API's `confirm_exceptions`)."""
    token = _confirmed.set(bool(flag))
    try:
        yield
    finally:
        _confirmed.reset(token)
