"""The `bytes` quota of projects (docs/design.md, "Projects"): usage measured from the engine's own
volume sizes, never older than DOCKVOL_USAGE_INTERVAL; imports and clones that would pass the limit
refused before anything is written; new volumes and imports refused while measured usage is over."""

from __future__ import annotations

import io

import pytest

from service import times
from service.config import ProjectConfig
from service.domain.projects import acting_for
from service.errors import DockvolError, QuotaExceeded

from ..engine_state import snapshot
from .conftest import leftovers, spec, tar, volume

LIMIT = 1000


def refusal(call) -> tuple[type, str, dict]:
    with pytest.raises(DockvolError) as raised:
        call()
    return type(raised.value), raised.value.detail, raised.value.extra


def over(used: int) -> tuple[type, str, dict]:
    return (
        QuotaExceeded,
        f"the project's bytes quota is {LIMIT} and it holds {used}",
        {"quota": "bytes", "limit": LIMIT, "used": used},
    )


def payload(size: int) -> io.BytesIO:
    return tar(("f", "file", b"x" * size, 0o644))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(uses):
    clock = Clock()
    uses.projects.meter.clock = clock
    return clock


@pytest.fixture
def uses(wire):
    return wire(projects={"a": ProjectConfig({"bytes": LIMIT}), "b": ProjectConfig({})}, usage_interval=60.0)


class TestUsage:
    def test_usage_is_the_engines_size_of_the_projects_volumes_with_the_time_it_was_measured(self, uses, engine, clock):
        with acting_for("a"):
            uses.volumes.create("va", "local", {}, {})
            uses.volumes.create("vb", "local", {}, {})
            uses.volume_data.import_("va", "", payload(100))
        engine.set_size("vb", 50)  # grown by a container
        with acting_for("b"):
            uses.volumes.create("other", "local", {}, {})
        engine.set_size("other", 70)
        engine.create_volume("unmanaged", "local", {}, {})
        engine.set_size("unmanaged", 9999)
        before = times.nanoseconds(times.now())
        a, b = uses.projects.usage("a"), uses.projects.usage("b")
        assert (a.bytes, b.bytes) == (150, 70)
        assert before <= times.nanoseconds(a.bytes_measured_at) <= times.nanoseconds(times.now())

    def test_a_measurement_serves_until_it_is_older_than_the_interval(self, uses, engine, clock):
        with acting_for("a"):
            uses.volumes.create("va", "local", {}, {})
        first = uses.projects.usage("a")
        engine.set_size("va", 500)
        clock.now += 59
        assert uses.projects.usage("a") == first
        clock.now += 2
        again = uses.projects.usage("a")
        assert again.bytes == 500 and again.bytes_measured_at >= first.bytes_measured_at
        assert engine.calls["volume_sizes"] == 2

    def test_a_project_without_a_bytes_quota_is_not_measured_by_its_writes(self, uses, engine):
        with acting_for("b"):
            uses.volumes.create("vb", "local", {}, {})
            uses.volume_data.import_("vb", "", payload(10))
            uses.volume_data.clone("vb", "copy", {}, False)
        assert engine.calls["volume_sizes"] == 0


class TestWritesThatWouldPassTheLimit:
    def test_an_import_that_would_pass_it_is_refused_before_anything_is_written(self, uses, engine, tmp_path):
        with acting_for("a"):
            uses.volumes.create("va", "local", {}, {})
            uses.projects.usage("a")  # a measurement from before the first import: a check measures afresh
            uses.volume_data.import_("va", "one", payload(600))
            before = snapshot(engine, tmp_path)
            assert refusal(lambda: uses.volume_data.import_("va", "two", payload(401))) == over(600)
            assert snapshot(engine, tmp_path) == before
            assert leftovers(engine) == []
            uses.volume_data.import_("va", "two", payload(400))  # up to the limit exactly
        assert uses.projects.usage("a").bytes == LIMIT

    def test_a_clone_that_would_pass_it_is_refused_before_anything_is_written(self, uses, engine, tmp_path):
        with acting_for("a"):
            uses.volumes.create("va", "local", {}, {})
            uses.volume_data.import_("va", "", payload(501))
            before = snapshot(engine, tmp_path)
            assert refusal(lambda: uses.volume_data.clone("va", "copy", {}, False)) == over(501)
            assert snapshot(engine, tmp_path) == before
            assert leftovers(engine) == []

    def test_a_clone_from_another_node_that_would_pass_it_is_refused_before_anything_is_written(
        self, uses, engine, tmp_path
    ):
        with acting_for("a"):
            uses.volumes.create("va", "local", {}, {})
            uses.volume_data.import_("va", "", payload(600))
            before = snapshot(engine, tmp_path)
            assert refusal(lambda: uses.volume_data.receive("copy", {}, lambda: payload(401))) == over(600)
            assert snapshot(engine, tmp_path) == before
            uses.volume_data.receive("copy", {}, lambda: payload(400))
        assert uses.projects.usage("a").bytes == LIMIT

    def test_what_an_unfinished_write_has_claimed_counts_against_the_next(self, uses, engine):
        """Two writes checked at once cannot both take the last room: each claims its bytes in its
        operation's record (a lock container) before it writes, and a check counts the claims."""
        with acting_for("a"):
            uses.volumes.create("va", "local", {}, {})
            with uses.intents.run("volume.import", ["volume/va"]) as first:
                with uses.byte_quota.claim(first, "a", 600):
                    with uses.intents.run("volume.import", ["volume/other"]) as second:
                        assert refusal(lambda: uses.byte_quota.claim(second, "a", 401).__enter__()) == over(600)
                        with uses.byte_quota.claim(second, "a", 400):
                            pass
            uses.volume_data.import_("va", "", payload(1000))  # both ended: their claims went with them


class TestOverTheLimit:
    def test_once_growth_passes_it_new_volumes_and_imports_are_refused_until_back_under(
        self, uses, engine, clock, tmp_path
    ):
        with acting_for("a"):
            uses.volumes.create("va", "local", {}, {})
            uses.projects.usage("a")
            engine.set_size("va", 1500)  # a container wrote
            uses.volumes.create("within-the-interval", "local", {}, {})  # not measured yet
            clock.now += 61
            before = snapshot(engine, tmp_path)
            assert refusal(lambda: uses.volumes.create("vnew", "local", {}, {})) == over(1500)
            assert refusal(lambda: uses.bindings.create(spec("app", mounts=(volume("/d"),)))) == over(1500)
            assert refusal(lambda: uses.volume_data.import_("va", "", payload(0))) == over(1500)
            assert snapshot(engine, tmp_path) == before
            assert leftovers(engine) == []
            uses.bindings.create(spec("app"))  # no volume, no bytes
            engine.set_size("va", LIMIT)
            clock.now += 61
            uses.volumes.create("vnew", "local", {}, {})
        with acting_for("b"):
            uses.volumes.create("theirs", "local", {}, {})  # another project's room is its own
