"""Which images and networks containers may use (docs/design.md section 4)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from ..engine.port import ContainerSpec, Engine
from ..errors import Forbidden, InvalidInput, NotFound

NEVER_NETWORKS = ("host",)  # and any "container:..." mode: only sharing groups join namespaces


class ContainerPolicy:
    def __init__(
        self,
        engine: Engine,
        allowed_images: Sequence[str],
        allowed_networks: Sequence[str],
        default_network: str,
        pull: str,
    ) -> None:
        self._engine = engine
        self._images = tuple(allowed_images)
        self._networks = tuple(allowed_networks)
        self._default_network = default_network
        self._pull = pull

    def image(self, ref: str) -> str:
        tagged = ref if ":" in ref.rsplit("/", 1)[-1] or "@" in ref else f"{ref}:latest"
        if not any(fnmatch.fnmatchcase(r, glob) for glob in self._images for r in (ref, tagged)):
            raise Forbidden(f"image {ref} is not allowed here (DOCKVOL_ALLOWED_IMAGES)")
        return tagged

    def network(self, requested: str | None) -> str:
        network = requested or self._default_network
        if network in NEVER_NETWORKS or network.startswith("container:"):
            raise Forbidden(f"network {network} is never allowed")
        if network not in self._networks:
            raise Forbidden(f"network {network} is not allowed here (DOCKVOL_ALLOWED_NETWORKS)")
        return network

    def ensure_image(self, ref: str) -> None:
        if self._engine.image_present(ref):
            return
        if self._pull == "never":
            raise InvalidInput("image", f"image {ref} is not on the engine (DOCKVOL_PULL=never)")
        try:
            self._engine.pull_image(ref)
        except NotFound:
            raise InvalidInput("image", f"image {ref} is not on the engine and could not be pulled") from None


def create_container(engine: Engine, spec: ContainerSpec) -> str:
    """The engine's create, with its 404 (an image, network or volume it cannot find, say one
    removed meanwhile, or a network this engine lacks) told as what it is: a bad request."""
    try:
        return engine.create_container(spec)
    except NotFound:
        raise InvalidInput(
            "network", f"the engine has no network {spec.network!r}, or the image or a volume went away"
        ) from None
