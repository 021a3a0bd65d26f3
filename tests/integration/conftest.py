"""Integration tier: the real adapter against the private engine that `make test` starts."""

from __future__ import annotations

import docker
import pytest

from tests.support import IMAGE, TEST_LABEL, engine_host


class RealWorld:
    """Containers made straight on the engine with the SDK, as `docker create` would."""

    def __init__(self, engine, sdk) -> None:
        self.engine = engine
        self.sdk = sdk
        self.made: list[str] = []
        self.images: list[str] = []

    def container(self, name, volumes, read_only=False, labels=None):
        mode = "ro" if read_only else "rw"
        self.sdk.containers.create(
            IMAGE,
            ["sleep", "300"],
            name=name,
            network_mode="none",
            volumes={v: {"bind": t, "mode": mode} for v, t in volumes.items()},
            labels={TEST_LABEL: "1", **(labels or {})},
        )
        self.made.append(name)

    def cleanup(self, tag_label):
        for ref in self.images:
            self.sdk.images.remove(ref, force=True)
        for name in self.made:
            try:
                self.sdk.containers.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
        for v in self.sdk.volumes.list(filters={"label": tag_label}):
            v.remove(force=True)


@pytest.fixture(scope="session")
def sdk():
    client = docker.DockerClient(base_url=engine_host(), version="auto", timeout=30)
    yield client
    client.close()
