"""scopes.grant, property-tested: never more than asked, never more than allowed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.registry.token.scopes import (
    ANONYMOUS,
    Principal,
    RepositoryFacts,
    Scope,
    grant,
    parse_scope,
)

TENANTS = ["acme", "globex", "initech"]
NAMESPACES = [*TENANTS, "nosuch", "Acme", ""]
ROLES = ["viewer", "member", "admin", "owner"]
ACTIONS = ["pull", "push", "delete", "*", "bogus"]
RIGHTS = {"viewer": {"pull"}, "member": {"pull", "push"}}  # admin/owner: all three

roles = st.dictionaries(st.sampled_from(TENANTS), st.sampled_from(ROLES), max_size=3)
users = st.builds(
    Principal,
    kind=st.just("user"),
    name=st.just("u"),
    roles=roles,
    platform_admin=st.booleans(),
    read_only=st.booleans(),
    token_tenant=st.none() | st.sampled_from(TENANTS),
)
robots = st.builds(
    Principal,
    kind=st.just("robot"),
    name=st.just("robot$x+y"),
    tenant=st.sampled_from(TENANTS),
    robot_scope=st.sampled_from(["pull", "push"]),
    robot_repositories=st.lists(st.sampled_from(["web", "api", "a/b"]), max_size=2).map(tuple),
)
deployers = st.builds(
    Principal,
    kind=st.just("deployer"),
    name=st.just("d"),
    tenant=st.sampled_from(TENANTS),
    robot_scope=st.sampled_from(["pull", "push"]),  # push: the platform image publisher
)
principals = users | robots | deployers | st.just(ANONYMOUS)
repo_names = st.builds(
    lambda ns, path: f"{ns}/{path}" if ns else path,
    st.sampled_from(NAMESPACES),
    st.sampled_from(["web", "api", "a/b", "x:y", "UP", "web/"]),
)
scopes = st.lists(
    st.one_of(
        st.builds(
            Scope,
            type=st.just("repository"),
            name=repo_names,
            actions=st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=4).map(tuple),
        ),
        st.builds(
            Scope,
            type=st.sampled_from(["registry", "thing"]),
            name=st.sampled_from(["catalog", "other"]),
            actions=st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=2).map(tuple),
        ),
    ),
    max_size=5,
)
public_names = st.sets(repo_names, max_size=4)


def rights(principal: Principal, name: str, public: set[str], anonymous_pull: bool) -> set[str]:
    """The oracle: what the issue says each principal may do on `name`."""
    namespace, slash, path = name.partition("/")
    if not slash or namespace not in TENANTS or name != name.lower() or ":" in name:
        return set()
    if path.endswith("/") or not path:
        return set()
    allowed: set[str] = set()
    if principal.kind == "user":
        if principal.token_tenant in (None, namespace):
            if principal.platform_admin:
                allowed = {"pull", "push", "delete"}
            elif namespace in principal.roles:
                allowed = RIGHTS.get(principal.roles[namespace], {"pull", "push", "delete"})
            if principal.read_only:
                allowed = allowed & {"pull"}
    elif principal.kind == "robot" and namespace == principal.tenant:
        if not principal.robot_repositories or path in principal.robot_repositories:
            allowed = {"pull", "push"} if principal.robot_scope == "push" else {"pull"}
    elif principal.kind == "deployer" and namespace == principal.tenant:
        allowed = {"pull", "push"} if principal.robot_scope == "push" else {"pull"}
    if name in public and (principal.kind != "anonymous" or anonymous_pull):
        allowed = allowed | {"pull"}
    return allowed


@settings(max_examples=400, deadline=None)
@given(principals, scopes, public_names, st.booleans())
def test_grant_is_never_wider_than_asked_or_allowed(principal, asked, public, anonymous_pull):
    def facts(name: str) -> RepositoryFacts:
        return RepositoryFacts(
            tenant_exists=name.partition("/")[0] in TENANTS, public=name in public
        )

    access = grant(principal, asked, facts, anonymous_pull=anonymous_pull)
    keys = [(entry["type"], entry["name"]) for entry in access]
    assert len(keys) == len(set(keys)), "one entry per resource"
    for entry in access:
        asked_actions = {
            a
            for s in asked
            if (s.type, s.name) == (entry["type"], entry["name"])
            for a in s.actions
        }
        granted = set(entry["actions"])
        assert granted, "no empty entries"
        if "*" not in asked_actions:
            assert granted <= asked_actions, "never more than asked"
        if entry["type"] == "repository":
            allowed = rights(principal, entry["name"], public, anonymous_pull)
            expanded = {"pull", "push", "delete"} if "*" in granted else granted
            assert expanded <= allowed, f"never more than allowed: {entry} vs {allowed}"
        else:
            assert entry == {"type": "registry", "name": "catalog", "actions": ["*"]}
            assert principal.kind == "user" and principal.platform_admin


@settings(max_examples=200, deadline=None)
@given(principals, repo_names, st.sets(st.sampled_from(["pull", "push", "delete"]), min_size=1))
def test_everything_allowed_and_asked_is_granted(principal, name, wanted):
    """The other direction: the grant is not needlessly narrow either."""
    facts = lambda n: RepositoryFacts(tenant_exists=n.partition("/")[0] in TENANTS)  # noqa: E731
    access = grant(principal, [Scope("repository", name, tuple(sorted(wanted)))], facts)
    granted = set(access[0]["actions"]) if access else set()
    assert granted == wanted & rights(principal, name, set(), False)


@given(
    st.sampled_from(["repository", "registry", "repository(plugin)"]),
    repo_names.filter(lambda n: " " not in n and n),
    st.lists(st.sampled_from(["pull", "push", "delete", "*"]), min_size=1, max_size=3, unique=True),
)
def test_parse_scope_round_trips(rtype, name, actions):
    text = f"{rtype}:{name}:{','.join(actions)}"
    assert parse_scope(text) == [Scope(rtype, name, tuple(actions))]


def test_parse_scope_drops_garbage():
    assert parse_scope("") == []
    assert parse_scope("repository:acme/web") == []  # no actions part
    assert parse_scope(":acme/web:pull") == []
    assert parse_scope("repository::pull") == []
    assert parse_scope("Repo/sitory:acme:pull") == []
    assert parse_scope("repository:acme/web:pull repository:acme/api:push") == [
        Scope("repository", "acme/web", ("pull",)),
        Scope("repository", "acme/api", ("push",)),
    ]
