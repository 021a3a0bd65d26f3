"""The state dir (service/domain/backups/state.py): records written whole, private, made on first write."""

from __future__ import annotations

import os

from service.domain.backups.state import StateDir


def test_reads_make_nothing_and_writes_are_private(tmp_path):
    state = StateDir(str(tmp_path / "state"))
    assert state.all("backups") == [] and state.read("backups", "run-1") is None
    assert not (tmp_path / "state").exists()  # a service that never wrote leaves no trace
    state.write("backups", "run-1", {"id": "run-1"})
    assert state.read("backups", "run-1") == {"id": "run-1"} and state.all("backups") == [{"id": "run-1"}]
    assert os.stat(tmp_path / "state").st_mode & 0o777 == 0o700
    assert os.stat(tmp_path / "state" / "backups" / "run-1.json").st_mode & 0o777 == 0o600


def test_a_name_that_could_leave_its_folder_names_no_record(tmp_path):
    state = StateDir(str(tmp_path / "state"))
    (tmp_path / "x.json").write_text("{}")
    for name in ("../x", "..", ".lock", "a/b", ""):
        assert state.read("backups", name) is None
