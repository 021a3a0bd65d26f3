from __future__ import annotations

import pytest

from service.config import ConfigError, Settings


def test_defaults_follow_the_design():
    s = Settings.from_env({})
    assert (s.bind_roots, s.allowed_images, s.infra_image) == ((), ("*",), "busybox:stable")
    assert (s.default_network, s.allowed_networks, s.pull, s.engine_timeout) == (
        "bridge",
        ("none", "bridge"),
        "missing",
        10.0,
    )
    assert s.auth_disabled is False


def test_json_values_are_parsed():
    s = Settings.from_env(
        {
            "DOCKVOL_TOKENS": '{"t": ["read", "write"]}',
            "DOCKVOL_BIND_ROOTS": '["/srv"]',
            "DOCKVOL_AUTH_DISABLED": "true",
            "DOCKVOL_ENGINE_TIMEOUT": "2.5",
        }
    )
    assert s.tokens == {"t": ["read", "write"]}
    assert s.bind_roots == ("/srv",)
    assert s.auth_disabled is True
    assert s.engine_timeout == 2.5


@pytest.mark.parametrize(
    "env",
    [
        {"DOCKVOL_TOKENS": "{nope"},
        {"DOCKVOL_TOKENS": '{"t": ["root"]}'},
        {"DOCKVOL_TOKENS": '["t"]'},
        {"DOCKVOL_BIND_ROOTS": '"/srv"'},
        {"DOCKVOL_PULL": "always"},
        {"DOCKVOL_ENGINE_TIMEOUT": "soon"},
        {"DOCKVOL_ENGINE_TIMEOUT": "0"},
        {"DOCKVOL_AUTH_DISABLED": "maybe"},
    ],
)
def test_malformed_values_stop_the_start(env):
    with pytest.raises(ConfigError):
        Settings.from_env(env)


def test_the_import_entries_cap_is_a_positive_whole_number():
    assert Settings.from_env({}).max_import_entries == 1_000_000
    assert Settings.from_env({"DOCKVOL_MAX_IMPORT_ENTRIES": "5000"}).max_import_entries == 5000
    for bad in ("0", "-1", "many", "1.5"):
        with pytest.raises(ConfigError, match="DOCKVOL_MAX_IMPORT_ENTRIES"):
            Settings.from_env({"DOCKVOL_MAX_IMPORT_ENTRIES": bad})


def test_fleet_is_off_unless_asked_and_then_needs_its_secret(tmp_path):
    assert (Settings.from_env({}).fleet, Settings.from_env({}).fleet_peers) == ("off", "tasks.dockvol")
    secret = tmp_path / "fleet"
    secret.write_bytes(b"  0123456789abcdef-secret\n")
    s = Settings.from_env({"DOCKVOL_FLEET": "swarm", "DOCKVOL_FLEET_SECRET_FILE": str(secret)})
    assert (s.fleet, s.fleet_secret) == ("swarm", b"0123456789abcdef-secret")
    short = tmp_path / "short"
    short.write_bytes(b"tiny")
    for env, says in [
        ({"DOCKVOL_FLEET": "mesh"}, "DOCKVOL_FLEET"),
        ({"DOCKVOL_FLEET": "swarm"}, "DOCKVOL_FLEET_SECRET_FILE"),
        ({"DOCKVOL_FLEET": "swarm", "DOCKVOL_FLEET_SECRET_FILE": str(tmp_path / "absent")}, "absent"),
        ({"DOCKVOL_FLEET": "swarm", "DOCKVOL_FLEET_SECRET_FILE": str(short)}, "16 bytes"),
    ]:
        with pytest.raises(ConfigError, match=says):
            Settings.from_env(env)


def test_the_servers_settings_are_read_here_too_with_the_defaults_of_the_dataclass():
    assert Settings.from_env({}) == Settings()  # one set of defaults
    s = Settings.from_env(
        {
            "DOCKVOL_LISTEN": "0.0.0.0:9000",
            "DOCKVOL_WORKERS": "4",
            "DOCKVOL_WORKER_CLASS": "gthread",
            "DOCKVOL_THREADS": "16",
            "DOCKVOL_GRACEFUL_TIMEOUT": "5",
            "DOCKVOL_LOG_LEVEL": "debug",
        }
    )
    assert (s.listen, s.workers, s.worker_class, s.threads, s.graceful_timeout, s.log_level) == (
        "0.0.0.0:9000",
        4,
        "gthread",
        16,
        5,
        "DEBUG",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DOCKVOL_WORKERS", "two"),
        ("DOCKVOL_WORKERS", "0"),
        ("DOCKVOL_GRACEFUL_TIMEOUT", "-1"),
        ("DOCKVOL_LOG_LEVEL", "loud"),
        ("DOCKVOL_MAX_IMPORT_BYTES", "1.5"),
    ],
)
def test_a_malformed_server_setting_stops_the_start_naming_it(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_the_usage_interval_is_a_positive_number_of_seconds():
    assert Settings.from_env({}).usage_interval == 300.0
    assert Settings.from_env({"DOCKVOL_USAGE_INTERVAL": "0.5"}).usage_interval == 0.5
    for bad in ("0", "-1", "soon", "86401"):
        with pytest.raises(ConfigError, match="DOCKVOL_USAGE_INTERVAL"):
            Settings.from_env({"DOCKVOL_USAGE_INTERVAL": bad})


def test_backups_have_a_state_dir_and_roots_of_their_own():
    s = Settings.from_env({})
    assert (s.state_dir, s.backup_roots) == ("/var/lib/dockvol", ())
    s = Settings.from_env({"DOCKVOL_STATE_DIR": "/srv/state", "DOCKVOL_BACKUP_ROOTS": '["/srv/backups"]'})
    assert (s.state_dir, s.backup_roots) == ("/srv/state", ("/srv/backups",))


@pytest.mark.parametrize(
    "env",
    [
        {"DOCKVOL_STATE_DIR": "relative/state"},
        {"DOCKVOL_BACKUP_ROOTS": '"/srv/backups"'},
        {"DOCKVOL_BACKUP_ROOTS": '["backups"]'},
        # a container writing in a bind source could rewrite a repository below it, or above it
        {"DOCKVOL_BIND_ROOTS": '["/srv"]', "DOCKVOL_BACKUP_ROOTS": '["/srv/backups"]'},
        {"DOCKVOL_BIND_ROOTS": '["/srv/data/b"]', "DOCKVOL_BACKUP_ROOTS": '["/srv/data"]'},
    ],
)
def test_malformed_backup_settings_stop_the_start(env):
    with pytest.raises(ConfigError, match="DOCKVOL_STATE_DIR|DOCKVOL_BACKUP_ROOTS"):
        Settings.from_env(env)
