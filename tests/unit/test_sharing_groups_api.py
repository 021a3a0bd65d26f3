"""/api/v1/sharing-groups, and bindings that join them, over the in-memory engine: the HTTP
mapping only (status, problem type, headers, the document). The rules these routes reach are
tested where they live, in tests/unit/usecases/test_sharing_groups.py."""

from __future__ import annotations

import pytest

PROBLEM = "application/problem+json"


def group(client, headers, **body):
    body.setdefault("name", "infracon")
    return client.post("/api/v1/sharing-groups", json=body, headers=headers)


def member(client, headers, name, mode="rw", **body):
    body = {"name": name, "image": "busybox:stable", "sharing_group": "infracon", "sharing_mode": mode, **body}
    return client.post("/api/v1/bindings", json=body, headers=headers)


def problem(r, status):
    """The answer is a problem document of that status."""
    assert r.status_code == status, r.get_json()
    assert r.content_type == PROBLEM and r.get_json()["status"] == status
    return r.get_json()


@pytest.fixture
def infracon(client, as_writer, bind_root):
    r = group(
        client,
        as_writer,
        mounts=[{"type": "bind", "source": f"{bind_root}/infracon", "target": "/data/web/html"}],
        share=["network", "ipc"],
    )
    assert r.status_code == 201, r.get_json()
    assert r.headers["Location"] == "/api/v1/sharing-groups/infracon"
    return r.get_json()


def test_create_answers_201_with_the_group_document(infracon, bind_root):
    assert (infracon["name"], infracon["share"], infracon["members"]) == ("infracon", ["ipc", "network"], [])
    assert (infracon["infra"]["container"], infracon["infra"]["state"]) == ("infracon", "running")
    assert infracon["infra"]["id"]
    (mount,) = infracon["mounts"]
    assert (mount["type"], mount["source"], mount["target"]) == ("bind", str(bind_root / "infracon"), "/data/web/html")


def test_a_member_is_a_binding_whose_document_names_its_group(client, as_writer, infracon):
    r = member(client, as_writer, "tomcat", mode="ro")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert (body["sharing_group"], body["sharing_mode"], body["network"]) == (
        "infracon",
        "ro",
        f"container:{infracon['infra']['id']}",
    )
    assert [(m["target"], m["read_only"]) for m in body["mounts"]] == [("/data/web/html", True)]
    assert client.get("/api/v1/sharing-groups/infracon", headers=as_writer).get_json()["members"] == ["tomcat"]
    listed = client.get("/api/v1/bindings?sharing_group=infracon", headers=as_writer).get_json()
    assert [b["name"] for b in listed] == ["tomcat"]


def test_joining_a_missing_group_is_422_naming_the_field(client, as_writer):
    assert "sharing_group" in problem(member(client, as_writer, "lonely"), 422)["errors"]


def test_delete_with_members_is_409_naming_them(client, as_writer, infracon):
    member(client, as_writer, "nginx")
    r = client.delete("/api/v1/sharing-groups/infracon", headers=as_writer)
    assert problem(r, 409)["members"] == ["nginx"]


def test_cascade_true_deletes_the_members_too_and_answers_204(client, as_writer, engine, infracon):
    member(client, as_writer, "nginx")
    r = client.delete("/api/v1/sharing-groups/infracon?cascade=true", headers=as_writer)
    assert (r.status_code, r.data) == (204, b"")
    assert engine.containers == {}
    problem(client.get("/api/v1/sharing-groups/infracon", headers=as_writer), 404)


def test_list_and_missing(client, as_reader, as_writer, infracon):
    group(client, as_writer, name="second")
    assert [g["name"] for g in client.get("/api/v1/sharing-groups", headers=as_reader).get_json()] == [
        "infracon",
        "second",
    ]
    problem(client.get("/api/v1/sharing-groups/ghost", headers=as_reader), 404)
    problem(client.delete("/api/v1/sharing-groups/ghost", headers=as_writer), 404)


@pytest.mark.parametrize(
    "body, status",
    [
        ({"share": ["uts"]}, 422),
        ({"share": ["network", "network"]}, 422),
        ({"name": "a"}, 422),
        ({"privileged": True}, 422),
        ({"mounts": [{"type": "bind", "source": "/etc", "target": "/x"}]}, 403),
    ],
)
def test_bad_groups_are_problems_and_make_nothing(client, as_writer, engine, body, status):
    problem(group(client, as_writer, **body), status)
    assert engine.containers == {} and engine.volumes == {}


def test_a_group_has_an_etag_and_delete_honours_if_match(client, as_writer, infracon):
    etag = client.get("/api/v1/sharing-groups/infracon", headers=as_writer).headers["ETag"]
    stale = client.delete("/api/v1/sharing-groups/infracon", headers={**as_writer, "If-Match": '"stale"'})
    problem(stale, 412)
    assert client.delete("/api/v1/sharing-groups/infracon", headers={**as_writer, "If-Match": etag}).status_code == 204
