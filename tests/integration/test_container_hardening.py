"""Every container the real adapter creates is hardened, whatever the spec says."""

from __future__ import annotations

from service.engine.docker_engine import DockerEngine
from service.engine.port import ContainerSpec, MountSpec
from tests.support import IMAGE, TEST_LABEL, engine_host, unique


def test_created_containers_are_never_privileged_and_share_no_host_namespace(sdk, tmp_path):
    engine = DockerEngine(engine_host(), timeout=30)
    name = unique("hard")
    spec = ContainerSpec(
        name=name,
        image=IMAGE,
        command=("sleep", "300"),
        labels={TEST_LABEL: "1"},
        network="none",
        mounts=(
            MountSpec("bind", "/www", str(tmp_path), propagation="rprivate"),
            MountSpec("tmpfs", "/t", size_bytes=1 << 20),
        ),
    )
    engine.create_container(spec)
    try:
        engine.start_container(name)
        host = sdk.api.inspect_container(name)["HostConfig"]
        assert host["Privileged"] is False
        assert host["NetworkMode"] == "none"
        assert host["PidMode"] == "" and host["UTSMode"] == "" and host["UsernsMode"] == ""
        assert host["IpcMode"] in ("private", "")
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["PidsLimit"] == 512
        assert not host["Devices"] and not host["CapAdd"]
        mounts = {m["Destination"]: m for m in sdk.api.inspect_container(name)["Mounts"]}
        assert mounts["/www"]["Propagation"] == "rprivate"
    finally:
        sdk.api.remove_container(name, force=True)
