"""The directories an operation makes for a missing bind source go again when the operation is
undone, killed or not: those it made that are still empty, deepest first, never through a link,
never one that existed before it or that something was put in since (docs/design.md section 6).
Against the in-memory engine, on real directories under the bind root."""

from __future__ import annotations

import os

import pytest

from tests.unit.engine_state import snapshot

from .test_intents import Killed, engine_away_after, kill_at, leftovers, restart


def body(*sources, name="fresh", command=("sleep", "3600")):
    return {
        "name": name,
        "image": "busybox:stable",
        "command": list(command),
        "network": "none",
        "mounts": [{"type": "bind", "source": str(s), "target": f"/m{i}"} for i, s in enumerate(sources)],
    }


def kill_at_start(monkeypatch, engine):
    """Killed as the new container is to start: it exists, the directories are made, nothing ran."""
    kill_at(monkeypatch, engine, step=10_000)

    def start(*args, **kwargs):
        raise Killed()

    monkeypatch.setattr(engine, "start_container", start)


@pytest.fixture
def kept(bind_root):
    """A directory that was there before: a made source's parent."""
    (bind_root / "kept").mkdir()
    return bind_root / "kept"


def gone(client, as_writer, name="fresh"):
    return client.get(f"/api/v1/bindings/{name}", headers=as_writer).status_code == 404


@pytest.mark.parametrize("fault", ["kill", "engine"])
def test_a_create_that_makes_its_source_interrupted_at_any_step_leaves_it_whole_or_no_directory(
    app, client, as_writer, engine, monkeypatch, bind_root, kept, tmp_path, fault
):
    source = kept / "a" / "b" / "c"
    rolled_back_with_a_container = False
    for step in range(1, 20):
        before = snapshot(engine, tmp_path)
        if fault == "kill":
            kill_at(monkeypatch, engine, step)
        else:
            engine_away_after(monkeypatch, engine, step)
        try:
            finished = client.post("/api/v1/bindings", json=body(source), headers=as_writer).status_code == 201
        except Killed:
            finished = False
        made = any(c.name == "fresh" for c in engine.containers.values())
        if fault == "kill":
            restart(monkeypatch, app, engine)
        else:
            monkeypatch.undo()
            app.extensions["dockvol"].intents.retry_own()
        got = client.get("/api/v1/bindings/fresh", headers=as_writer)
        assert leftovers(engine) == [], f"step {step}"
        if got.status_code == 200:
            assert got.get_json()["state"] == "running", f"step {step}"
            assert [m["source"] for m in got.get_json()["mounts"]] == [str(source)]
            assert source.is_dir()
        else:
            assert got.status_code == 404 and not finished
            assert snapshot(engine, tmp_path) == before, f"step {step}"
            rolled_back_with_a_container |= made
        if finished:
            break
        if got.status_code == 200:
            assert client.delete("/api/v1/bindings/fresh", headers=as_writer).status_code == 204
            for d in (source, source.parent, source.parent.parent):
                d.rmdir()
    assert finished and step > 3, step
    assert rolled_back_with_a_container


def test_a_made_directory_that_got_a_file_stays_with_its_parents_and_the_others_go(
    app, client, as_writer, engine, monkeypatch, kept
):
    kill_at_start(monkeypatch, engine)
    with pytest.raises(Killed):
        client.post("/api/v1/bindings", json=body(kept / "a" / "b" / "c", kept / "x" / "y"), headers=as_writer)
    (kept / "a" / "b" / "note.txt").write_text("put here meanwhile")
    restart(monkeypatch, app, engine)
    assert gone(client, as_writer)
    assert not (kept / "a" / "b" / "c").exists()  # empty and made: it goes
    assert (kept / "a" / "b" / "note.txt").read_text() == "put here meanwhile"
    assert not (kept / "x").exists()
    assert sorted(os.listdir(kept)) == ["a"]


def test_a_symlink_swapped_in_for_a_made_directory_is_not_followed(
    app, client, as_writer, engine, monkeypatch, kept, tmp_path
):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "c").mkdir(parents=True)  # what following the link to a/b would reach, and remove
    kill_at_start(monkeypatch, engine)
    with pytest.raises(Killed):
        client.post("/api/v1/bindings", json=body(kept / "a" / "b" / "c", kept / "x" / "y"), headers=as_writer)
    os.rmdir(kept / "a" / "b" / "c")
    os.rmdir(kept / "a" / "b")
    os.symlink(elsewhere, kept / "a" / "b")
    restart(monkeypatch, app, engine)
    assert gone(client, as_writer)
    assert (elsewhere / "c").is_dir()
    assert os.readlink(kept / "a" / "b") == str(elsewhere)
    assert not (kept / "x").exists()


def test_a_made_directory_that_another_binding_mounts_since_stays(app, client, as_writer, engine, monkeypatch, kept):
    kill_at_start(monkeypatch, engine)
    with pytest.raises(Killed):
        client.post("/api/v1/bindings", json=body(kept / "a" / "b", kept / "x" / "y"), headers=as_writer)
    monkeypatch.undo()
    other = body(kept / "a" / "b", name="other")
    assert client.post("/api/v1/bindings", json=other, headers=as_writer).status_code == 201
    restart(monkeypatch, app, engine)
    assert gone(client, as_writer)
    assert (kept / "a" / "b").is_dir()
    assert client.get("/api/v1/bindings/other", headers=as_writer).get_json()["state"] == "running"
    assert not (kept / "x").exists()


def test_a_replace_killed_before_its_new_container_runs_takes_back_the_directories_it_made(
    app, client, as_writer, engine, monkeypatch, kept, tmp_path
):
    assert client.post("/api/v1/bindings", json=body(), headers=as_writer).status_code == 201
    before = snapshot(engine, tmp_path)
    kill_at_start(monkeypatch, engine)
    with pytest.raises(Killed):
        client.put("/api/v1/bindings/fresh", json=body(kept / "a" / "b"), headers=as_writer)
    restart(monkeypatch, app, engine)
    assert snapshot(engine, tmp_path) == before


def test_a_sharing_group_create_killed_before_it_runs_takes_back_the_directories_it_made(
    app, client, as_writer, engine, monkeypatch, kept, tmp_path
):
    before = snapshot(engine, tmp_path)
    kill_at_start(monkeypatch, engine)
    group = {"name": "web", "mounts": [{"type": "bind", "source": str(kept / "a" / "b"), "target": "/w"}]}
    with pytest.raises(Killed):
        client.post("/api/v1/sharing-groups", json=group, headers=as_writer)
    restart(monkeypatch, app, engine)
    assert client.get("/api/v1/sharing-groups/web", headers=as_writer).status_code == 404
    assert snapshot(engine, tmp_path) == before
