"""The engine port (port.py) and its two implementations."""

from .port import ContainerRecord, Engine, EngineInfo, MountRecord, PruneReport, VolumeRecord

__all__ = ["ContainerRecord", "Engine", "EngineInfo", "MountRecord", "PruneReport", "VolumeRecord"]
