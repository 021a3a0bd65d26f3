"""The engine port (port.py), the Docker engine behind it (docker_engine.py) and the view (viewed.py)."""

from .port import ContainerRecord, Engine, EngineInfo, MountRecord, PruneReport, VolumeRecord

__all__ = ["ContainerRecord", "Engine", "EngineInfo", "MountRecord", "PruneReport", "VolumeRecord"]
