"""/api/v1/volumes over the Flask test client and the in-memory engine: the HTTP mapping (status,
problem type, headers, the document), the query's filters and pages, and what a listing costs.
The rules of create, delete and prune are tested where they live, in
tests/unit/usecases/test_volumes.py."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from service.domain import labels as label

PROBLEM = "application/problem+json"


def problem(r, status):
    """The answer is a problem document of that status."""
    assert r.status_code == status, r.get_json()
    assert r.content_type == PROBLEM and r.get_json()["status"] == status
    return r.get_json()


def make(client, headers, **body):
    return client.post("/api/v1/volumes", json=body, headers=headers)


def test_create_answers_201_with_location_etag_and_the_volume(client, as_writer, engine):
    r = make(client, as_writer, name="site-data", labels={"team": "web"})
    assert r.status_code == 201
    assert r.headers["Location"] == "/api/v1/volumes/site-data"
    assert r.headers["ETag"]
    body = r.get_json()
    assert body["name"] == "site-data"
    assert body["labels"] == {"team": "web"}
    assert (body["managed"], body["anonymous"], body["in_use"], body["used_by"]) == (True, False, False, [])


def test_create_without_a_name_makes_an_anonymous_volume(client, as_writer):
    body = make(client, as_writer).get_json()
    assert re.fullmatch(r"[0-9a-f]{64}", body["name"])
    assert body["anonymous"] is True


def test_create_of_an_existing_name_is_409(client, as_writer):
    make(client, as_writer, name="dup")
    assert "dup exists already" in problem(make(client, as_writer, name="dup"), 409)["detail"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "-dash"}, "name"),
        ({"name": "a"}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": "a b"}, "name"),
        ({"name": "ok\n"}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": 5}, "name"),
        ({"labels": ["a"]}, "labels"),
        ({"labels": {"dockvol.managed": "false"}}, "labels"),
        ({"labels": {"=bad": "x"}}, "labels"),
        ({"privileged": True}, "privileged"),
        ({"driver_opts": {"type": 5}}, "driver_opts"),
        ({"driver": "no such/driver!"}, "driver"),
    ],
)
def test_bad_create_bodies_are_422_and_create_nothing(client, as_writer, engine, body, field):
    r = make(client, as_writer, **body)
    assert r.status_code == 422, r.get_json()
    problem = r.get_json()
    assert r.content_type == PROBLEM
    assert any(k == field or k.startswith(field + ".") for k in problem["errors"]), problem
    assert engine.volumes == {}


def test_malformed_json_is_400(client, as_writer, engine):
    r = client.post("/api/v1/volumes", data="{nope", content_type="application/json", headers=as_writer)
    assert r.status_code == 400
    assert r.content_type == PROBLEM
    assert engine.volumes == {}


def test_a_body_that_is_not_json_is_415(client, as_writer, engine):
    r = client.post(
        "/api/v1/volumes", data="name=x", content_type="application/x-www-form-urlencoded", headers=as_writer
    )
    assert r.status_code == 415
    assert engine.volumes == {}


def test_an_oversized_body_is_413(client, as_writer, engine):
    r = make(client, as_writer, name="big", labels={f"k{i}": "v" * 4000 for i in range(400)})
    assert r.status_code == 413
    assert r.content_type == PROBLEM
    assert engine.volumes == {}


def test_driver_options_reach_the_use_case_and_are_shown(client, as_writer):
    tmpfs = {"type": "tmpfs", "device": "tmpfs", "o": "size=64m"}
    r = make(client, as_writer, name="scratch", driver_opts=tmpfs)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["driver_opts"] == tmpfs
    problem(make(client, as_writer, name="etc", driver_opts={"type": "none", "o": "bind", "device": "/etc"}), 403)


class TestList:
    @pytest.fixture
    def populated(self, client, as_writer, engine):
        make(client, as_writer, name="alpha", labels={"team": "web"})
        make(client, as_writer, name="beta", labels={"team": "db"})
        anonymous = make(client, as_writer).get_json()["name"]
        engine.create_volume("foreign", "local", {}, {"team": "web"})
        engine.add_container("web1", {"alpha": "/data"}, labels={label.MANAGED: "true", label.BINDING: "web1"})
        engine.add_container("other", {"alpha": "/backup", "foreign": "/f"}, read_only=True)
        return anonymous

    def names(self, client, headers, query=""):
        r = client.get(f"/api/v1/volumes{query}", headers=headers)
        assert r.status_code == 200, r.get_json()
        return [v["name"] for v in r.get_json()]

    def test_shows_who_uses_each_volume(self, client, as_reader, populated):
        body = {v["name"]: v for v in client.get("/api/v1/volumes", headers=as_reader).get_json()}
        assert body["alpha"]["in_use"] is True
        assert body["alpha"]["used_by"] == [
            {"container": "other", "node": "node-1", "binding": None, "target": "/backup", "read_only": True},
            {"container": "web1", "node": "node-1", "binding": "web1", "target": "/data", "read_only": False},
        ]
        assert body["beta"]["in_use"] is False
        assert body["foreign"]["managed"] is False

    def test_is_sorted_by_name(self, client, as_reader, populated):
        assert self.names(client, as_reader) == sorted(["alpha", "beta", "foreign", populated])

    @pytest.mark.parametrize(
        "query, expected",
        [
            ("?label=team=web", {"alpha", "foreign"}),
            ("?label=team", {"alpha", "beta", "foreign"}),
            ("?label=team=web&label=team=db", set()),
            ("?dangling=true", {"beta", "ANON"}),
            ("?dangling=false", {"alpha", "foreign"}),
            ("?anonymous=true", {"ANON"}),
            ("?managed=false", {"foreign"}),
            ("?managed=true&anonymous=false", {"alpha", "beta"}),
            ("?name=ph", {"alpha"}),
            ("?name=.", set()),
            ("?driver=local&name=eta", {"beta"}),
        ],
    )
    def test_filters(self, client, as_reader, populated, query, expected):
        expected = {populated if n == "ANON" else n for n in expected}
        assert set(self.names(client, as_reader, query)) == expected

    def test_paginates_with_x_pagination_and_link(self, client, as_reader, populated):
        r = client.get("/api/v1/volumes?page=2&page_size=1&label=team", headers=as_reader)
        assert [v["name"] for v in r.get_json()] == ["beta"]
        meta = json.loads(r.headers["X-Pagination"])
        assert (meta["total"], meta["total_pages"], meta["page"], meta["previous_page"], meta["next_page"]) == (
            3,
            3,
            2,
            1,
            3,
        )
        links = r.headers["Link"]
        assert "<?" not in links
        assert '/api/v1/volumes?page_size=1&label=team&page=3>; rel="next"' in links
        assert 'page=1>; rel="prev"' in links
        assert 'page=3>; rel="last"' in links

    def test_a_page_past_the_end_is_empty(self, client, as_reader, populated):
        r = client.get("/api/v1/volumes?page=9", headers=as_reader)
        assert r.status_code == 200
        assert r.get_json() == []

    @pytest.mark.parametrize(
        "query",
        [
            "?page_size=0",
            "?page_size=5000",
            "?page=0",
            "?page=x",
            "?dangling=maybe",
            "?label==x",
            "?label=a%0Ab",
            "?sort=name",
            "?name=",
        ],
    )
    def test_bad_query_parameters_are_422(self, client, as_reader, query):
        r = client.get(f"/api/v1/volumes{query}", headers=as_reader)
        assert r.status_code == 422
        assert r.content_type == PROBLEM
        assert r.get_json()["errors"]

    def test_costs_a_fixed_number_of_engine_calls_whatever_the_host_holds(self, client, as_reader, engine):
        def calls_for_listing():
            engine.calls.clear()
            assert client.get("/api/v1/volumes?page_size=1000", headers=as_reader).status_code == 200
            return sum(engine.calls.values())

        engine.create_volume("v0", "local", {}, {})
        engine.add_container("c0", {"v0": "/d"})
        calls_for_listing()  # the first also asks the engine who it is, once
        small = calls_for_listing()
        for i in range(1, 300):
            engine.create_volume(f"v{i}", "local", {}, {})
            engine.add_container(f"c{i}", {f"v{i}": "/d"})
        assert calls_for_listing() == small == 2


class TestGetAndDelete:
    def test_get_shows_one_volume_with_an_etag(self, client, as_writer, as_reader):
        created = make(client, as_writer, name="one")
        r = client.get("/api/v1/volumes/one", headers=as_reader)
        assert r.status_code == 200
        assert r.get_json() == created.get_json()
        assert r.headers["ETag"] == created.headers["ETag"]

    def test_etag_changes_when_the_volume_does(self, client, as_writer, as_reader, engine):
        make(client, as_writer, name="one")
        before = client.get("/api/v1/volumes/one", headers=as_reader).headers["ETag"]
        engine.add_container("user", {"one": "/d"})
        after = client.get("/api/v1/volumes/one", headers=as_reader).headers["ETag"]
        assert before != after

    def test_get_of_a_missing_volume_is_404(self, client, as_reader):
        r = client.get("/api/v1/volumes/nothing-here", headers=as_reader)
        assert r.status_code == 404
        assert r.content_type == PROBLEM
        assert "nothing-here" in r.get_json()["detail"]

    @pytest.mark.parametrize("path", ["/api/v1/volumes/..", "/api/v1/volumes/-x", "/api/v1/volumes/a%2Fb"])
    def test_names_outside_the_rule_are_no_route(self, client, as_reader, engine, path):
        assert client.get(path, headers=as_reader).status_code == 404
        assert engine.calls["inspect_volume"] == 0

    def test_delete_removes_the_volume(self, client, as_writer, engine):
        make(client, as_writer, name="gone")
        assert client.delete("/api/v1/volumes/gone", headers=as_writer).status_code == 204
        assert "gone" not in engine.volumes

    def test_delete_of_a_volume_in_use_is_409_with_used_by(self, client, as_writer, engine):
        make(client, as_writer, name="busy")
        engine.add_container("app1", {"busy": "/data"})
        r = client.delete("/api/v1/volumes/busy", headers=as_writer)
        assert problem(r, 409)["used_by"] == [
            {"container": "app1", "node": "node-1", "binding": None, "target": "/data", "read_only": False}
        ]

    def test_delete_honours_if_match(self, client, as_writer, as_reader):
        make(client, as_writer, name="guarded")
        etag = client.get("/api/v1/volumes/guarded", headers=as_reader).headers["ETag"]
        stale = {**as_writer, "If-Match": '"0000"'}
        problem(client.delete("/api/v1/volumes/guarded", headers=stale), 412)
        fresh = {**as_writer, "If-Match": etag}
        assert client.delete("/api/v1/volumes/guarded", headers=fresh).status_code == 204

    def test_if_match_survives_the_engine_moving_the_creation_time(self, client, as_writer, as_reader, engine):
        """Engine 20.10 moves a volume's CreatedAt, with no event, when its top level changes (a
        clone or an import writes into it): a GET answered from a view and the DELETE, which reads
        the engine, then saw one unchanged volume under two ETags, and an honest If-Match was 412."""
        make(client, as_writer, name="moved")
        etag = client.get("/api/v1/volumes/moved", headers=as_reader).headers["ETag"]
        engine.volumes["moved"] = dataclasses.replace(engine.volumes["moved"], created_at="2030-01-01T00:00:00Z")
        assert client.get("/api/v1/volumes/moved", headers=as_reader).get_json()["created_at"] == "2030-01-01T00:00:00Z"
        assert client.delete("/api/v1/volumes/moved", headers={**as_writer, "If-Match": etag}).status_code == 204

    def test_delete_of_a_missing_volume_is_404(self, client, as_writer):
        problem(client.delete("/api/v1/volumes/nothing-here", headers=as_writer), 404)


class TestPrune:
    @pytest.fixture
    def setup(self, client, as_writer, engine):
        anonymous = [make(client, as_writer, labels={"env": e}).get_json()["name"] for e in ("dev", "prod")]
        make(client, as_writer, name="named", labels={"env": "dev"})
        make(client, as_writer, name="kept-busy")
        used = make(client, as_writer).get_json()["name"]
        engine.add_container("user", {used: "/d", "kept-busy": "/k"})
        engine.create_volume("foreign", "local", {}, {})
        engine.set_size(anonymous[0], 100)
        engine.set_size("named", 20)
        return anonymous

    def prune(self, client, headers, **body):
        r = client.post("/api/v1/volumes/prune", json=body, headers=headers)
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    def test_a_dry_run_answers_what_a_prune_would_remove(self, client, as_admin, engine, setup):
        result = self.prune(client, as_admin, dry_run=True)
        assert result == {"volumes_deleted": sorted(setup), "space_reclaimed": 100, "dry_run": True}
        assert set(setup) <= set(engine.volumes)

    def test_include_named_and_labels_reach_the_prune(self, client, as_admin, engine, setup):
        result = self.prune(client, as_admin, include_named=True, labels=["env=dev"])
        assert result == {"volumes_deleted": sorted([setup[0], "named"]), "space_reclaimed": 120, "dry_run": False}
        assert setup[1] in engine.volumes

    def test_prune_needs_admin(self, client, as_writer, engine, setup):
        engine.calls.clear()
        r = client.post("/api/v1/volumes/prune", json={}, headers=as_writer)
        assert r.status_code == 403
        assert sum(engine.calls.values()) == 0

    @pytest.mark.parametrize("body", [{"dry_run": "perhaps"}, {"labels": "env"}, {"labels": ["=x"]}, {"force": True}])
    def test_bad_prune_bodies_are_422_and_remove_nothing(self, client, as_admin, engine, setup, body):
        volumes = set(engine.volumes)
        problem(client.post("/api/v1/volumes/prune", json=body, headers=as_admin), 422)
        assert set(engine.volumes) == volumes


def test_the_fast_volume_document_is_what_the_schema_dumps(client, as_writer, as_reader, engine):
    from service.domain.volumes import Volume, VolumeUse
    from service.http.documents import volume_document
    from service.http.volumes.schemas import VolumeSchema

    samples = [
        Volume("a1", "local", {}, {}, "/m", "local", None, True, False),
        Volume(
            "b2",
            "local",
            {"type": "tmpfs"},
            {"k": "v"},
            "/m2",
            "local",
            "2026-01-01T00:00:00Z",
            False,
            True,
            (VolumeUse("c", None, "/d", True), VolumeUse("d", "d", "/e", False)),
            project="web",
        ),
    ]
    for v in samples:
        used_by = [{**dataclasses.asdict(u), "node": "n1"} for u in v.used_by]
        shown = {**dataclasses.asdict(v), "node": "n1", "in_use": v.in_use, "used_by": used_by}
        assert volume_document(v, "n1") == VolumeSchema().dump(shown)


def test_the_engines_own_anonymous_mark_is_not_shown_as_a_label(client, as_writer, engine):
    """Engines from API 1.42 mark the volumes they name; 20.10 does not. A client sees the same
    volume on both: `anonymous` true, and only its own labels."""
    name = "f" * 64
    engine.create_volume(name, "local", {}, {"com.docker.volume.anonymous": "", "team": "web"})
    shown = client.get(f"/api/v1/volumes/{name}", headers=as_writer).get_json()
    assert shown["anonymous"] is True and shown["labels"] == {"team": "web"}
