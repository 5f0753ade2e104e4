"""Revision summaries and diffs: pure functions over two specs."""

from apps.deployments.revisions import MASK, diff, summarize


def spec(**services):
    return {"project": {"name": None, "services": services}, "hardening": {"memory": 1}}


def svc(image="nginx:1.25", replicas=None, memory=None, ports=(), environment=None):
    return {
        "image": image,
        "deploy": {"replicas": replicas, "limits": {"cpus": None, "memory": memory, "pids": None}},
        "ports": [
            {"target": t, "published": p, "host_ip": "127.0.0.1", "protocol": "tcp"}
            for p, t in ports
        ],
        "environment": environment or {},
    }


def test_first_deploy_lists_services():
    summary, changes = summarize(None, spec(web=svc(), api=svc()), None, {"A": "1"})
    assert summary == "First deploy: 2 services (api, web)"
    assert {c["kind"] for c in changes} == {"service", "variable"}


def test_image_scale_limits_ports_and_services():
    old = spec(web=svc(), gone=svc())
    new = spec(web=svc("nginx:1.27", replicas=3, memory=256 << 20, ports=[(8080, 80)]), added=svc())
    summary, changes = summarize(old, new, {}, {})
    kinds = {(c["kind"], c.get("service")) for c in changes}
    assert ("image", "web") in kinds and ("scale", "web") in kinds
    assert ("limits", "web") in kinds and ("ports", "web") in kinds
    assert ("service", "added") in kinds and ("service", "gone") in kinds
    assert "web: image nginx:1.25 → nginx:1.27" in summary
    assert "web: scale 1 → 3" in summary
    assert "memory limit none → 256 MiB" in summary
    assert "127.0.0.1:8080->80/tcp" in summary
    assert "service added added" in summary and "service gone removed" in summary


def test_variables_added_changed_removed_and_secrets_masked():
    old = {"USER": "a", "DROPPED": "x", "DB_PASSWORD": "hunter22", "ADMIN": "old-admin"}
    new = {"USER": "b", "NEW": "y", "DB_PASSWORD": "s3cr3t-new", "ADMIN": "new-admin"}
    summary, changes = summarize(spec(web=svc()), spec(web=svc()), old, new, {"ADMIN"})
    by_name = {c["name"]: c for c in changes}
    assert by_name["USER"] == {
        "kind": "variable",
        "change": "changed",
        "name": "USER",
        "from": "a",
        "to": "b",
    }
    assert by_name["NEW"]["change"] == "added"
    assert by_name["DROPPED"]["change"] == "removed"
    assert by_name["DB_PASSWORD"]["from"] == MASK and by_name["DB_PASSWORD"]["to"] == MASK
    assert by_name["ADMIN"]["to"] == MASK
    for secret in ("hunter22", "s3cr3t-new", "old-admin", "new-admin"):
        assert secret not in summary
        assert secret not in str(changes)


def test_no_changes():
    assert summarize(spec(web=svc()), spec(web=svc()), {"A": "1"}, {"A": "1"}) == (
        "No changes",
        [],
    )


def test_diff_is_unified_and_masks_secrets():
    a = spec(web=svc(environment={"DB_PASSWORD": "hunter22", "MODE": "x", "URL": "db:hunter22"}))
    b = spec(web=svc("nginx:1.27", environment={"DB_PASSWORD": "other22", "MODE": "x"}))
    lines = diff(a, b, label_a="r1", label_b="r2", secret_values=["hunter22"])
    text = "\n".join(lines)
    assert lines[0] == "--- r1" and lines[1] == "+++ r2"
    assert '-        "image": "nginx:1.25",' in lines
    assert '+        "image": "nginx:1.27",' in lines
    assert "hunter22" not in text and "other22" not in text
    assert MASK in text
    assert diff(a, a) == []


def test_diff_keeps_non_secret_keys_named_key():
    a = {"project": {"services": {}, "volumes": {"data": {"key": "data"}}}}
    b = {"project": {"services": {}, "volumes": {"data": {"key": "data", "driver": "local"}}}}
    text = "\n".join(diff(a, b))
    assert '"key": "data"' in text
