"""Byte streams as chunks: read as a file, compressed on the way, and closed exactly once.

Nothing here knows tar; everything works chunk by chunk, so memory does not grow with a stream's
size."""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1 << 20


class ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (for tarfile's streaming mode)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(view.nbytes, len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def gzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    for chunk in chunks:
        if out := compressor.compress(chunk):
            yield out
    yield compressor.flush()


class Stream:
    """Chunks for a response body, with cleanup that runs exactly once: when the body has been
    sent, when the client goes away mid-way, or when the response is never sent at all."""

    def __init__(self, chunks: Iterable[bytes], cleanup: Callable[[], None]) -> None:
        self._chunks = chunks
        self._cleanup = cleanup
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks
        finally:
            self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            close = getattr(self._chunks, "close", None)
            try:
                if close:
                    close()
            finally:
                self._cleanup()
