"""The installation id: stable across processes, valid as part of engine names."""

import multiprocessing

import pytest

from paas.installation import ENV_VAR, InstallationIdError, load_installation_id


def _load(folder, queue):
    queue.put(load_installation_id(folder))


def test_generated_once_owner_only_and_shared_by_processes_started_together(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("PYTEST_VERSION", raising=False)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_load, args=(tmp_path, queue)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    ids = {queue.get(timeout=5) for _ in workers}
    assert len(ids) == 1
    (only,) = ids
    assert only.isalnum() and only == only.lower() and "-" not in only
    assert load_installation_id(tmp_path) == only
    assert (tmp_path / "installation_id").stat().st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == ["installation_id"]


@pytest.mark.parametrize("bad", ["a-b", "UPPER", "abc", "x" * 17, "a b c d", "../etc"])
def test_an_id_that_could_break_engine_names_is_refused(tmp_path, monkeypatch, bad):
    monkeypatch.setenv(ENV_VAR, bad)
    with pytest.raises(InstallationIdError, match="4-16 lowercase letters or digits"):
        load_installation_id(tmp_path)


def test_each_pytest_run_is_an_installation_of_its_own(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PYTEST_VERSION", "8")
    first = load_installation_id(tmp_path)
    assert first.startswith("t") and not (tmp_path / "installation_id").exists()
    assert load_installation_id(tmp_path) == first  # exported for the workers it starts
