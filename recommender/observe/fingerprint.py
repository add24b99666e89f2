"""A cheap fingerprint of an input file, so ``netpol observe`` never appends one twice.

Below both the store (which records fingerprints) and the engines (which take
them of their inputs), so neither imports the other.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

_FINGERPRINT_BYTES = 1 << 20


@dataclass(frozen=True)
class FileFingerprint:
    """An appended file: its path as given, size and a digest of its ends."""

    path: str
    size: int
    digest: str


def fingerprint_file(path: str) -> FileFingerprint:
    """Size plus SHA-256 of the first and last MiB: cheap even for huge captures."""
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(_FINGERPRINT_BYTES))
        if size > _FINGERPRINT_BYTES:
            fh.seek(max(size - _FINGERPRINT_BYTES, _FINGERPRINT_BYTES))
            digest.update(fh.read())
    return FileFingerprint(path, size, digest.hexdigest())
