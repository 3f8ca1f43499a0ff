"""Read and write DIR/manifest.json atomically (see corpus/schema.py for what it holds).

The manifest is what makes a stage's output count as finished: a stage's section is written only
after its files are in place, and the file is replaced by rename, so a reader never sees half a
manifest and a crash never leaves a section pointing at missing output.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from corpus.schema import MANIFEST_FILE, SCHEMA_VERSION


class ManifestError(Exception):
    """The manifest is unreadable or from another schema version; the message says which file."""


def empty_manifest() -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "stages": {}}


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The manifest of a build directory, or None if it has none."""
    path = Path(out_dir) / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ManifestError(f"{path}: unreadable manifest: {error}") from None
    if not isinstance(manifest, dict) or "stages" not in manifest:
        raise ManifestError(f"{path}: not a luke-corpus manifest (no 'stages' key)")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ManifestError(f"{path}: schema version {manifest.get('schema_version')}, this "
                            f"code reads version {SCHEMA_VERSION}; rebuild with --overwrite")
    return manifest


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Replace DIR/manifest.json in one rename (written beside it, fsynced first)."""
    out_dir = Path(out_dir)
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=out_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())       # mkstemp makes it private; a manifest is not
        os.replace(tmp, out_dir / MANIFEST_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_fingerprint(path: Path) -> dict[str, Any]:
    """Identity of an input file: size and a hash of its first and last MiB (not its mtime, so
    a copied or re-downloaded identical dump is the same input); mtime is recorded for reading."""
    stat = Path(path).stat()
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(stat.st_size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(0, stat.st_size - (1 << 20)))
        digest.update(f.read(1 << 20))
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "digest": digest.hexdigest(),
            "digest_of": "blake2b-128 of the size, the first MiB and the last MiB"}
