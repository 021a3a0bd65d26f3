"""The OpenAPI document says what the server checks (issue 16): for each rule the schema states,
a body the document calls invalid is refused and one it calls valid is taken, by the same app."""

from __future__ import annotations

import jsonschema
import pytest

PROBLEM = "application/problem+json"


@pytest.fixture
def spec(client):
    return client.get("/api/openapi.json").get_json()


def valid(spec, component, body):
    """What the document says of `body` as a `component` (JSON Schema 2020-12, OpenAPI 3.1's)."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": spec["components"]}
    return jsonschema.Draft202012Validator(schema).is_valid(body)


def test_the_document_is_openapi_3_1(spec):
    assert spec["openapi"] == "3.1.0"


LABELS = [
    ({"team": "web"}, True),
    ({"a.b/c-d_e": ""}, True),
    ({"": "x"}, False),
    ({"-team": "x"}, False),
    ({"team-": "x"}, False),
    ({"té": "x"}, False),
    ({"dockvol.managed": "true"}, False),  # dockvol's own
]


@pytest.mark.parametrize("labels, ok", LABELS)
def test_label_keys_as_the_document_says(spec, client, as_writer, labels, ok):
    assert valid(spec, "VolumeCreate", {"labels": labels}) is ok
    r = client.post("/api/v1/volumes", json={"labels": labels}, headers=as_writer)
    assert r.status_code == (201 if ok else 422), r.get_json()


@pytest.mark.parametrize(
    "body, status",
    [
        ({}, 201),
        ({"driver_opts": {}}, 201),
        ({"driver_opts": {"type": "tmpfs", "o": "size=1m", "device": "tmpfs"}}, 201),
        ({"driver": "local", "driver_opts": {"type": "tmpfs"}}, 201),
        ({"driver_opts": {"size": "1m"}}, 422),  # not an option of local
        ({"driver_opts": {"": "x"}}, 422),
        ({"driver_opts": {"type": "tmpfs", "o": "size=1m,bind"}}, 403),
        ({"driver_opts": {"type": "none", "o": "bind"}}, 403),  # a bind needs its device
        ({"driver_opts": {"type": "none", "o": "rbind", "device": "/data/../etc"}}, 422),
        ({"driver_opts": {"type": "ext4", "device": "/dev/sda"}}, 403),
        ({"name": "prune"}, 422),
    ],
)
def test_local_driver_options_as_the_document_says(spec, client, as_writer, body, status):
    assert valid(spec, "VolumeCreate", body) is (status == 201)
    r = client.post("/api/v1/volumes", json=body, headers=as_writer)
    assert r.status_code == status, r.get_json()


def test_a_bind_in_disguise_inside_a_root_is_valid_and_taken(spec, client, as_writer, bind_root):
    body = {"driver_opts": {"type": "none", "o": "bind", "device": str(bind_root)}}
    assert valid(spec, "VolumeCreate", body)
    assert client.post("/api/v1/volumes", json=body, headers=as_writer).status_code == 201


def binding(**body):
    return {"name": "b2", "image": "busybox:stable", "network": "none", **body}


@pytest.mark.parametrize(
    "image, ok",
    [
        ("busybox:stable", True),
        ("registry.example:5000/team/app:1.2@sha256:" + "0" * 64, True),
        ("localhost:5000/app", True),
        ("VO/x", False),  # a first component without '.' or ':' is a path, and paths are lower case
        ("a..b/x", False),
        ("a_b.c/x", False),  # a host (it has a '.') with a '_'
        ("a" * 237, True),  # docker.io/library/ + 237 = 255
        ("a" * 238, False),
        ("x/" + "y" * 243, True),  # docker.io/ + 245 = 255
        ("x/" + "y" * 244, False),
        ("h.io:5000/" + "y" * 245, True),
        ("h.io:5000/" + "y" * 246, False),
        ("h.io/" + "y" * 250 + ":" + "t" * 128, True),  # the tag does not count
    ],
)
def test_image_references_as_the_document_says(spec, client, as_writer, engine, image, ok):
    assert valid(spec, "BindingCreate", binding(image=image)) is ok
    r = client.post("/api/v1/bindings", json=binding(image=image), headers=as_writer)
    if ok:
        assert r.status_code != 422 or r.get_json()["errors"]["image"] != ["not an image reference"]
    else:
        assert r.status_code == 422 and "image" in r.get_json()["errors"], r.get_json()
        assert engine.containers == {}


@pytest.mark.parametrize("environment, ok", [({"TZ": "UTC", "_x1": ""}, True), ({"": "x"}, False), ({"1A": ""}, False)])
def test_environment_names_as_the_document_says(spec, client, as_writer, environment, ok):
    assert valid(spec, "BindingCreate", binding(environment=environment)) is ok
    r = client.post("/api/v1/bindings", json=binding(environment=environment), headers=as_writer)
    assert r.status_code == (201 if ok else 422), r.get_json()


def test_an_integer_with_a_zero_fraction_is_an_integer(spec, client, as_writer):
    """JSON Schema 2020-12 counts 4096.0 as an integer: so does the server now (4096.5 it refuses)."""
    tmpfs = {"type": "tmpfs", "target": "/tmp", "size_bytes": 4096.0}
    assert valid(spec, "BindingCreate", binding(mounts=[tmpfs]))
    assert client.post("/api/v1/bindings", json=binding(mounts=[tmpfs]), headers=as_writer).status_code == 201
    half = {**tmpfs, "size_bytes": 4096.5}
    assert not valid(spec, "BindingCreate", binding(name="b3", mounts=[half]))
    assert client.post("/api/v1/bindings", json=binding(name="b3", mounts=[half]), headers=as_writer).status_code == 422


@pytest.mark.parametrize(
    "source, ok", [("/data/x", True), ("/data/../etc", False), ("/data/..", False), ("/" + "a" * 256, False)]
)
def test_bind_sources_as_the_document_says(spec, source, ok):
    assert valid(spec, "BindMount", {"type": "bind", "source": source, "target": "/www"}) is ok


def test_a_namespace_shared_twice_is_invalid_to_both(spec, client, as_writer):
    body = {"name": "infracon", "share": ["network", "network"]}
    assert not valid(spec, "SharingGroupCreate", body)
    assert client.post("/api/v1/sharing-groups", json=body, headers=as_writer).status_code == 422


def test_what_the_document_cannot_state_it_tells(spec):
    """A repeated mount target, a PUT body's name other than the path's: said in words, and 422."""
    create = spec["components"]["schemas"]["BindingCreate"]["properties"]
    assert "Each target at most once" in create["mounts"]["description"]
    replace = spec["components"]["schemas"]["BindingReplace"]["properties"]["name"]
    assert replace["readOnly"] is True
    put = spec["paths"]["/api/v1/bindings/{name}"]["put"]
    assert "`name` other than the path's" in put["responses"]["422"]["description"]


class TestIfMatch:
    @pytest.fixture
    def volume(self, client, as_writer):
        assert client.post("/api/v1/volumes", json={"name": "guarded"}, headers=as_writer).status_code == 201
        return "/api/v1/volumes/guarded"

    @pytest.mark.parametrize("value", ["", " ", "garbage", 'W/"x"', '"0000"'])
    def test_an_if_match_naming_no_current_etag_is_412(self, client, as_writer, engine, volume, value):
        r = client.delete(volume, headers={**as_writer, "If-Match": value})
        assert r.status_code == 412 and r.content_type == PROBLEM
        assert "guarded" in engine.volumes

    def test_a_weak_form_of_the_current_etag_is_412_too(self, client, as_writer, as_reader, volume):
        etag = client.get(volume, headers=as_reader).headers["ETag"]
        assert client.delete(volume, headers={**as_writer, "If-Match": f"W/{etag}"}).status_code == 412
        assert client.delete(volume, headers={**as_writer, "If-Match": f'"x", {etag}'}).status_code == 204

    def test_star_matches_whatever_it_is(self, client, as_writer, volume):
        assert client.delete(volume, headers={**as_writer, "If-Match": "*"}).status_code == 204

    def test_412_is_documented_with_what_causes_it(self, spec):
        op = spec["paths"]["/api/v1/volumes/{name}"]["delete"]
        assert "weak" in op["responses"]["412"]["description"]
        (header,) = [p for p in op["parameters"] if p["name"] == "If-Match"]
        assert "412" in header["description"]
