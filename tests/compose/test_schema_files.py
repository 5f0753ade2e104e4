"""Secrets and configs in a compose file: top-level entries naming the environment's
store, a service's short and long syntax, and everything else refused by field."""

from __future__ import annotations

import pytest

from apps.compose.spec import FileReference, StoreReference
from tests.compose.helpers import load, refused


def test_top_level_entries_name_store_entries():
    project = load(
        """
        services:
          web:
            image: nginx
            secrets: [db]
            configs: [site, legacy, named]
        secrets:
          db: {external: true}
        configs:
          site: {external: true}
          legacy: {external: {name: old-site}}
          named: {name: site.v2}
        """
    )
    assert project.secrets == {"db": StoreReference("db", "db")}
    assert project.configs == {
        "site": StoreReference("site", "site"),
        "legacy": StoreReference("legacy", "old-site"),
        "named": StoreReference("named", "site.v2"),
    }


def test_short_syntax_targets():
    project = load(
        """
        services:
          web: {image: nginx, secrets: [db], configs: [site]}
        secrets: {db: {external: true}}
        configs: {site: {external: true}}
        """
    )
    web = project.services["web"]
    assert web.secrets == (FileReference("db", "/run/secrets/db"),)
    assert web.configs == (FileReference("site", "/site"),)


def test_long_syntax_with_owner_and_octal_mode():
    project = load(
        """
        services:
          web:
            image: nginx
            secrets:
              - {source: db, target: password.txt, uid: "1000", gid: 1000, mode: 0440}
              - {source: other, target: /run/secrets/again, mode: "0400"}
            configs:
              - {source: site, target: /etc/nginx/conf.d/site.conf, mode: 0444}
        secrets: {db: {external: true}, other: {external: true}}
        configs: {site: {external: true}}
        """
    )
    web = project.services["web"]
    assert web.secrets == (
        FileReference("db", "/run/secrets/password.txt", "1000", "1000", 0o440),
        FileReference("other", "/run/secrets/again", None, None, 0o400),
    )
    assert web.configs == (FileReference("site", "/etc/nginx/conf.d/site.conf", mode=0o444),)


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("file: ./db.txt", "files on the Berth host are not read"),
        ("environment: DB_PASSWORD", "variables of the deployer's shell are not read"),
        ("content: hunter2", "inline content would be stored"),
        ("driver: vault", "only Berth's store delivers them"),
        ("template_driver: golang", "templates are not supported"),
        ("labels: {a: b}", "Berth labels what it creates itself"),
    ],
)
def test_other_sources_refused_by_field(field, reason):
    [message] = refused(f"services: {{web: {{image: x}}}}\nsecrets:\n  db: {{{field}}}\n")
    key = field.split(":")[0]
    assert message.startswith(f"secret 'db': {key}: key '{key}' is refused ({reason}")
    assert "external: true" in message


def test_an_entry_must_name_the_store():
    [message] = refused("services: {web: {image: x}}\nconfigs:\n  site: {}\n")
    assert message.startswith("config 'site': name an entry of the environment's config store")


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ("nope", "secrets[0]: uses undefined secret 'nope'"),
        ("{target: x}", "'source' is required"),
        ("{source: db, target: ../etc/passwd}", "a secret is a file in /run/secrets"),
        ("{source: db, mode: 0999}", "invalid mode"),
        ("{source: db, mode: 1000}", "invalid mode"),
        ("{source: db, uid: root}", "expected a numeric user or group id"),
        ("{source: db, rotate: true}", "key 'rotate' is not supported by Berth"),
        ("'bad name!'", "invalid secret name"),
    ],
)
def test_bad_service_secrets(item, needle):
    messages = refused(
        f"services:\n  web: {{image: x, secrets: [{item}]}}\nsecrets: {{db: {{external: true}}}}\n"
    )
    assert any(needle in m and m.startswith("service 'web': secrets") for m in messages), messages


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("etc/x", "give an absolute path"),
        ("/etc/../x", "no '..'"),
        ("/proc/self/x", "not under /proc, /sys or /dev"),
        ("/dev", "not under /proc, /sys or /dev"),
    ],
)
def test_bad_config_targets(target, needle):
    [message] = refused(
        f"services:\n  web: {{image: x, configs: [{{source: c, target: '{target}'}}]}}\n"
        "configs: {c: {external: true}}\n"
    )
    assert message.startswith("service 'web': configs[0].target: invalid target")
    assert needle in message


def test_one_target_twice_is_refused():
    [message] = refused(
        "services:\n  web: {image: x, secrets: [db, {source: other, target: db}]}\n"
        "secrets: {db: {external: true}, other: {external: true}}\n"
    )
    assert "target /run/secrets/db is used twice" in message


def test_one_source_twice_needs_one_owner_and_mode():
    [message] = refused(
        "services:\n  web: {image: x, secrets: [db, {source: db, target: again, mode: 0444}]}\n"
        "secrets: {db: {external: true}}\n"
    )
    assert message.startswith("service 'web': secrets[1]: db is mounted twice")
    load(
        """
        services:
          web: {image: x, secrets: [db, {source: db, target: again}]}
        secrets: {db: {external: true}}
        """
    )
