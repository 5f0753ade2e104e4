"""A throwaway OpenLDAP server for the LDAP tests: real slapd on loopback, in a temp dir.

The config database (cn=config, mdb backend, suffix dc=berth,dc=test) is generated with
`slapadd -n0`, the server runs in the foreground on a free port and the directory is
filled with `ldapadd`, exactly as an operator would do it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SLAPD = Path("/usr/sbin/slapd")
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SUFFIX = "dc=berth,dc=test"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret-42"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
POSIX_GROUPS = f"ou=posix,{SUFFIX}"
PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "carol": "carol-pw-3"}


def group_dn(name: str, base: str = GROUPS) -> str:
    return f"cn={name},{base}"


def user_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def _hash(password: str) -> str:
    return subprocess.run(
        ["slappasswd", "-s", password], check=True, capture_output=True, text=True
    ).stdout.strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config_ldif(root: Path) -> str:
    includes = "\n".join(
        f"include: file://{SCHEMA_DIR / name}.ldif"
        for name in ("core", "cosine", "inetorgperson", "nis")
    )
    return f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {root}/slapd.pid

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULE_DIR}
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{includes}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcRootDN: {ADMIN_DN}
olcRootPW: {_hash(ADMIN_PASSWORD)}
olcDbDirectory: {root}/data
olcDbMaxSize: 67108864
olcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{1}}to * by * read
"""


def _person(uid: str, given: str, sn: str, mail: str | None) -> str:
    mail_line = f"mail: {mail}\n" if mail else ""
    return (
        f"dn: {user_dn(uid)}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {given} {sn}\n"
        f"givenName: {given}\nsn: {sn}\n{mail_line}"
        f"userPassword: {_hash(PASSWORDS[uid])}\n"
    )


def _group(name: str, members: list[str]) -> str:
    # groupOfNames needs at least one member: the admin DN stays in every group.
    lines = "".join(f"member: {dn}\n" for dn in [ADMIN_DN, *members])
    return f"dn: {group_dn(name)}\nobjectClass: groupOfNames\ncn: {name}\n{lines}"


def directory_ldif() -> str:
    """alice in acme-devs (and ghost-devs), bob in acme-ops and platform-staff, carol
    (no mail) in no groupOfNames, only in the posixGroup acme-viewers."""
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: berth\no: Berth\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
        f"dn: {POSIX_GROUPS}\nobjectClass: organizationalUnit\nou: posix\n",
        _person("alice", "Alice", "Liddell", "alice@berth.test"),
        _person("bob", "Bob", "Builder", "bob@berth.test"),
        _person("carol", "Carol", "Danvers", None),
        _group("acme-devs", [user_dn("alice")]),
        _group("acme-ops", [user_dn("bob")]),
        _group("ghost-devs", [user_dn("alice")]),
        _group("platform-staff", [user_dn("bob")]),
        f"dn: {group_dn('acme-viewers', POSIX_GROUPS)}\nobjectClass: posixGroup\n"
        "cn: acme-viewers\ngidNumber: 5001\nmemberUid: carol\n",
    ]
    return "\n".join(entries)


@dataclass
class Slapd:
    """One running slapd; `uri` is what BERTH_LDAP_URI would be set to."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="berth-slapd-")))
    port: int = 0
    process: subprocess.Popen | None = None
    log: Any = None

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 15.0) -> Slapd:
        (self.root / "config").mkdir()
        (self.root / "data").mkdir()
        (self.root / "config.ldif").write_text(config_ldif(self.root))
        subprocess.run(
            [
                "slapadd",
                "-n0",
                "-F",
                str(self.root / "config"),
                "-l",
                str(self.root / "config.ldif"),
            ],
            check=True,
            capture_output=True,
        )
        for attempt in range(3):  # the free port may be taken before slapd binds it
            self.port = _free_port()
            self.log = open(self.root / "slapd.log", "wb")  # noqa: SIM115 -- closed in stop()
            self.process = subprocess.Popen(
                [str(SLAPD), "-h", self.uri, "-F", str(self.root / "config"), "-d", "0"],
                stdout=subprocess.DEVNULL,
                stderr=self.log,
            )
            try:
                self._wait(timeout)
                break
            except RuntimeError:
                self.log.close()
                if attempt == 2 or self.process.poll() is None:
                    self.stop()
                    raise
        self.ldap("ldapadd", directory_ldif())
        return self

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited: {(self.root / 'slapd.log').read_text()}")
            probe = subprocess.run(
                ["ldapsearch", "-x", "-H", self.uri, "-b", "", "-s", "base", "-LLL"],
                capture_output=True,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"slapd did not answer on {self.uri} within {timeout}s")

    def ldap(self, tool: str, ldif: str) -> None:
        """Run ldapadd or ldapmodify as the directory admin with `ldif` on stdin."""
        subprocess.run(
            [tool, "-x", "-H", self.uri, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD],
            input=ldif,
            text=True,
            check=True,
            capture_output=True,
        )

    def modify(self, ldif: str) -> None:
        self.ldap("ldapmodify", ldif)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)
