"""Flow input files: path expansion, gzip, stdin, and line batches as Arrow.

Lines are split in bulk (numpy over byte blocks) and handed to the engine as
Arrow record batches of ``(file_id, line_no, text, reject)``, so no Python code
runs per line and memory stays bounded by the block size whatever the input.
``text`` is an Arrow string view into the block: the line bytes are never copied.
Line numbers are physical, 1-based, counted by ``\\n``, like ``wc -l``/editors.

Bad bytes never stop a run: a line that is not UTF-8 and the tail of a
truncated ``.gz`` become rows with a ``reject`` reason that the engine counts.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import io
import os
import queue
import sys
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

from recommender.errors import InputError

STDIN = "-"
GZIP_MAGIC = b"\x1f\x8b"
#: Bytes read per block. A batch holds the complete lines of one block.
DEFAULT_BLOCK_SIZE = 8 << 20
#: Longest line kept whole; a longer line is rejected (bounded memory).
MAX_LINE_BYTES = 64 << 20

LINE_SCHEMA = pa.schema(
    [
        ("file_id", pa.int32()),
        ("line_no", pa.int64()),
        ("text", pa.string_view()),
        ("reject", pa.string()),
    ]
)


@dataclass(frozen=True)
class FlowSource:
    """One input: ``path`` exactly as the user wrote it (or ``-``)."""

    path: str
    file_id: int


def expand_paths(paths: Sequence[str]) -> list[FlowSource]:
    """Expand globs; keep order, drop repeats; fail on a missing or unreadable path.

    A pattern that matches nothing is an error too: a typo must not look like an
    empty capture.

    Raises
    ------
    InputError
        For a missing, unreadable or directory path, or an empty glob.
    """
    out: list[str] = []
    for raw in paths:
        for path in _expand_one(raw):
            if path not in out:
                out.append(path)
    if not out:
        raise InputError(None, "no flow input given", hint="pass --flows FILE or - for stdin")
    return [FlowSource(p, i) for i, p in enumerate(out)]


def _expand_one(raw: str) -> list[str]:
    if raw == STDIN:
        return [STDIN]
    if glob.has_magic(raw) and not os.path.exists(raw):
        matches = sorted(glob.glob(raw))
        if not matches:
            raise InputError(raw, "no file matches this pattern")
        for match in matches:
            _check_readable(match)
        return matches
    _check_readable(raw)
    return [raw]


def _check_readable(path: str) -> None:
    if not os.path.exists(path):
        raise InputError(path, "no such file")
    if os.path.isdir(path) and not path.rstrip("/").lower().endswith(".parquet"):
        # (a *.parquet directory is Spark's output of netpol convert)
        raise InputError(path, "is a directory", hint="pass the files, or a glob like DIR/*.json")
    if not os.access(path, os.R_OK):
        raise InputError(path, "permission denied")


def open_binary(source: FlowSource) -> BinaryIO:
    """Open a source for reading bytes, gunzipping when it starts with the gzip magic."""
    if source.path == STDIN:
        raw: BinaryIO = sys.stdin.buffer
    else:
        try:
            raw = open(source.path, "rb")  # noqa: SIM115 - closed by the caller
        except OSError as exc:
            raise InputError(source.path, f"cannot open: {exc.strerror}") from exc
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[type-var]
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    return buffered


def iter_line_batches(
    source: FlowSource, block_size: int = DEFAULT_BLOCK_SIZE
) -> Iterator[pa.RecordBatch]:
    """Yield the lines of one source as Arrow batches, in order.

    The final newline is optional; ``\\r`` before ``\\n`` is stripped.
    """
    fh = open_binary(source)
    splitter = _LineSplitter(source.file_id)
    try:
        while True:
            chunk, error = _read_block(fh, block_size, source.path == STDIN)
            if chunk:
                yield from splitter.feed(chunk)
            if error is not None:  # the cut-off partial line is part of the damage
                yield splitter.error_row(_read_error(error))
                return
            if not chunk:
                yield from splitter.flush()
                return
    finally:
        if source.path != STDIN:
            fh.close()


def _read_block(fh: BinaryIO, size: int, incremental: bool) -> tuple[bytes, BaseException | None]:
    """Read about ``size`` bytes; keep what was read before a decompression error.

    On stdin return what is available at once (for a live ``--follow``).
    """
    parts: list[bytes] = []
    total = 0
    try:
        while total < size:
            part = fh.read1(size - total) if hasattr(fh, "read1") else fh.read(size - total)
            if not part:
                break
            parts.append(part)
            total += len(part)
            if incremental:
                break
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        return b"".join(parts), exc
    return b"".join(parts), None


def _read_error(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "truncated gzip stream (file ends before the end-of-stream marker)"
    if isinstance(exc, (zlib.error, gzip.BadGzipFile)):
        return f"corrupt gzip data ({exc})"
    return f"read error ({exc})"


class _LineSplitter:
    """Turn byte blocks into numbered line batches; keeps the partial last line."""

    def __init__(self, file_id: int) -> None:
        self.file_id = file_id
        self.next_line = 1
        self.rest = b""

    def feed(self, chunk: bytes) -> Iterator[pa.RecordBatch]:
        buf = self.rest + chunk if self.rest else chunk
        last_nl = buf.rfind(b"\n")
        if last_nl < 0:
            self.rest = buf
            if len(buf) > MAX_LINE_BYTES:
                self.rest = b""
                yield self._single(f"line longer than {MAX_LINE_BYTES} bytes")
            return
        self.rest = buf[last_nl + 1 :]
        yield self._batch(buf, last_nl + 1)

    def flush(self) -> Iterator[pa.RecordBatch]:
        if self.rest:
            tail, self.rest = self.rest, b""
            data = tail + b"\n"
            yield self._batch(data, len(data))

    def error_row(self, reason: str) -> pa.RecordBatch:
        """A reject row at the next line number; drops the pending partial line."""
        self.rest = b""
        return self._single(reason)

    def _single(self, reason: str) -> pa.RecordBatch:
        batch = pa.record_batch(
            [
                pa.array([self.file_id], pa.int32()),
                pa.array([self.next_line], pa.int64()),
                pa.array([""], pa.string_view()),
                pa.array([reason], pa.string()),
            ],
            schema=LINE_SCHEMA,
        )
        self.next_line += 1
        return batch

    def _batch(self, data: bytes, end: int) -> pa.RecordBatch:
        """The lines of ``data[:end]`` (ending with ``\\n``), built with numpy, not per line."""
        texts, rejects = _strings(data, end)
        n = len(texts)
        line_no = np.arange(self.next_line, self.next_line + n, dtype=np.int64)
        self.next_line += n
        return pa.record_batch(
            [pa.array(np.full(n, self.file_id, dtype=np.int32)), pa.array(line_no), texts, rejects],
            schema=LINE_SCHEMA,
        )


def _strings(data: bytes, end: int | None = None) -> tuple[pa.Array, pa.Array]:
    """Arrow strings for the ``\\n``-terminated lines of ``data[:end]`` (``\\r\\n`` too).

    The strings are Arrow *string views* into ``data`` itself (no copy of the
    text): 16 bytes per line, built with numpy. A line that is not UTF-8
    becomes an empty string with a reject reason.
    """
    rejects: list[str | None] | None = None
    end = len(data) if end is None else end
    try:
        codecs.utf_8_decode(memoryview(data)[:end], None, True)
    except UnicodeDecodeError:
        data, rejects = _blank_bad_lines(data[:end])
        end = len(data)
    arr = np.frombuffer(data, dtype=np.uint8, count=end)
    ends = np.flatnonzero(arr == 10)
    n = len(ends)
    starts = np.zeros(n, dtype=np.int64)
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts
    lengths -= (lengths > 0) & (arr[np.maximum(ends - 1, 0)] == 13)
    texts = pa.Array.from_buffers(
        pa.string_view(), n, [None, pa.py_buffer(_views(arr, starts, lengths)), pa.py_buffer(data)]
    )
    reject = pa.array(rejects, pa.string()) if rejects is not None else pa.nulls(n, pa.string())
    return texts, reject


#: Arrow string views keep strings up to this many bytes inline.
_INLINE = 12


def _views(arr: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Arrow string-view structs (length, inline bytes or prefix + buffer 0 + offset)."""
    n = len(starts)
    views = np.zeros((n, 4), dtype=np.int32)
    views[:, 0] = lengths
    head = arr[np.minimum(starts[:, None] + np.arange(_INLINE), len(arr) - 1)]
    head[np.arange(_INLINE)[None, :] >= lengths[:, None]] = 0  # inline padding must be zero
    views.view(np.uint8).reshape(n, 16)[:, 4:] = head
    long = lengths > _INLINE
    views[long, 2] = 0  # data buffer index
    views[long, 3] = starts[long]
    return views


def _blank_bad_lines(data: bytes) -> tuple[bytes, list[str | None]]:
    """Slow path, only for a block with bad bytes: empty each non-UTF-8 line."""
    lines = data.split(b"\n")[:-1]
    rejects: list[str | None] = []
    for i, line in enumerate(lines):
        try:
            line.decode("utf-8")
            rejects.append(None)
        except UnicodeDecodeError as exc:
            rejects.append(f"not UTF-8 text (byte {exc.start + 1})")
            lines[i] = b""
    return b"\n".join(lines) + b"\n", rejects


_DONE = object()


def prefetched(items: Iterator[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """Produce ``items`` in a background thread, at most ``depth`` ahead (bounded memory).

    Reading, gunzipping and splitting then overlap with the engine's work on the
    previous batch. An exception in the producer is re-raised here, in order.
    """
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(slots, stop, item):
                    return
            _put(slots, stop, _DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            _put(slots, stop, exc)

    worker = threading.Thread(target=produce, name="netpol-line-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _put(slots: queue.Queue[Any], stop: threading.Event, item: Any) -> bool:
    """Put unless the consumer has gone; False when it has."""
    while not stop.is_set():
        try:
            slots.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
