"""DOCKVOL_PROJECTS(_FILE) and the project of a token: parsed, checked, or a clear refusal to start."""

from __future__ import annotations

import hashlib
import json

import pytest

from service.auth import TokenStore
from service.config import ConfigError, ProjectConfig, Settings


def test_projects_are_parsed_with_their_quotas_and_roots(tmp_path):
    (tmp_path / "a").mkdir()
    s = Settings.from_env(
        {
            "DOCKVOL_BIND_ROOTS": json.dumps([str(tmp_path)]),
            "DOCKVOL_PROJECTS": json.dumps(
                {"web": {"quota": {"volumes": 5, "bytes": 10}, "bind_roots": [str(tmp_path / "a")]}, "ci": {}}
            ),
        }
    )
    assert s.projects == {
        "web": ProjectConfig({"volumes": 5, "bytes": 10}, (str(tmp_path / "a"),)),
        "ci": ProjectConfig(),
    }


def test_the_file_is_read_when_the_variable_is_not_set(tmp_path):
    path = tmp_path / "projects.json"
    path.write_text('{"web": {"quota": {"bindings": 1}}}')
    assert Settings.from_env({"DOCKVOL_PROJECTS_FILE": str(path)}).projects["web"].quota == {"bindings": 1}


@pytest.mark.parametrize(
    "projects, words",
    [
        ('["web"]', "must be a JSON object"),
        ('{"Web!": {}}', "is not a project name"),
        ('{"*": {}}', "is not a project name"),
        ('{"web": {"quota": {"cpus": 1}}}', "quota of web"),
        ('{"web": {"quota": {"volumes": -1}}}', "quota of web"),
        ('{"web": {"quota": {"volumes": true}}}', "quota of web"),
        ('{"web": {"owner": "x"}}', "must be an object with"),
        ('{"web": {"bind_roots": ["srv"]}}', "absolute paths"),
        ('{"web": {"bind_roots": ["/elsewhere"]}}', "does not lie under DOCKVOL_BIND_ROOTS"),
        ('{"web": {"bind_roots": ["/srv2"]}}', "does not lie under DOCKVOL_BIND_ROOTS"),  # /srv does not admit /srv2
        ('{"a": {"bind_roots": ["/srv/x"]}, "b": {"bind_roots": ["/srv/x/y"]}}', "overlap"),
        ('{"a": {"bind_roots": ["/srv/x"]}, "b": {"bind_roots": ["/srv/x"]}}', "overlap"),
    ],
)
def test_a_bad_project_stops_the_start_saying_why(projects, words):
    with pytest.raises(ConfigError, match=words):
        Settings.from_env({"DOCKVOL_BIND_ROOTS": '["/srv"]', "DOCKVOL_PROJECTS": projects})


def test_sibling_roots_of_two_projects_do_not_overlap():
    s = Settings.from_env(
        {
            "DOCKVOL_BIND_ROOTS": '["/srv"]',
            "DOCKVOL_PROJECTS": '{"a": {"bind_roots": ["/srv/b"]}, "b": {"bind_roots": ["/srv/b2"]}}',
        }
    )
    assert (s.bind_roots_of("a"), s.bind_roots_of("b")) == (("/srv/b",), ("/srv/b2",))


def test_bind_roots_of_projects_without_their_own():
    upgraded = Settings.from_env({"DOCKVOL_BIND_ROOTS": '["/srv"]', "DOCKVOL_PROJECTS": '{"web": {}}'})
    assert (upgraded.bind_roots_of("default"), upgraded.bind_roots_of("web"), upgraded.bind_roots_of("*")) == (
        ("/srv",),
        (),
        ("/srv",),
    )
    split = Settings.from_env(
        {"DOCKVOL_BIND_ROOTS": '["/srv"]', "DOCKVOL_PROJECTS": '{"web": {"bind_roots": ["/srv/w"]}}'}
    )
    assert split.bind_roots_of("default") == ()  # else `default` would reach web's roots


@pytest.mark.parametrize(
    "tokens",
    [
        '{"t": {"scopes": ["read"], "project": "Web"}}',
        '{"t": {"scopes": ["read"], "project": 3}}',
        '{"t": {"scopes": ["root"], "project": "web"}}',
        '{"t": {"scopes": ["read"], "team": "web"}}',
    ],
)
def test_a_bad_token_grant_stops_the_start(tokens):
    with pytest.raises(ConfigError, match="DOCKVOL_TOKENS"):
        Settings.from_env({"DOCKVOL_TOKENS": tokens})


def test_a_token_belongs_to_its_project_and_a_plain_list_means_default(tmp_path):
    grants = {"w": {"scopes": ["write"], "project": "web"}, "o": {"scopes": ["admin"], "project": "*"}, "d": ["read"]}
    s = Settings.from_env({"DOCKVOL_TOKENS": json.dumps(grants)})
    path = tmp_path / "tokens.json"
    path.write_text(
        json.dumps(
            [
                {"name": "ci", "sha256": hashlib.sha256(b"f1").hexdigest(), "scopes": ["read"], "project": "ci"},
                {"name": "old", "sha256": hashlib.sha256(b"f2").hexdigest(), "scopes": ["read"]},
            ]
        )
    )
    store = TokenStore.from_settings(s.tokens, str(path), False)
    found = {t: store.identify(f"Bearer {t}") for t in ("w", "o", "d", "f1", "f2")}
    assert {t: p.project for t, p in found.items() if p} == {
        "w": "web",
        "o": "*",
        "d": "default",
        "f1": "ci",
        "f2": "default",
    }
    assert store.projects() == ["*", "ci", "default", "web"]
