"""Datasets named by URL (``s3://bucket/prefix``, any fsspec URL): cached locally, then read.

The analysis reads local files (it hashes every input for provenance), so a remote dataset is
mirrored into a cache directory first; files already cached with the same size are not fetched
again.  ``analysis.json`` records the URL each cached input came from.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import platformdirs

from probe.errors import DatasetError

CACHE_ENV = "RES64_CACHE_DIR"


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(platformdirs.user_cache_dir("res64")) / "datasets"


def is_remote(item: str) -> bool:
    return "://" in item and not item.startswith("file://")


def fetch_remote(url: str, cache: Path | None = None) -> Path:
    """Mirror the ``measurements/`` and ``hops/`` Parquet files of the dataset at ``url``."""
    from probe.upload import open_dataset_filesystem

    fs, root = open_dataset_filesystem(url)
    root = root.rstrip("/")
    local = (cache or cache_root()) / hashlib.sha256(url.encode()).hexdigest()[:16]
    n = 0
    try:
        for table in ("measurements", "hops"):
            base = f"{root}/{table}"
            if not fs.exists(base):
                continue
            for key, info in fs.find(base, detail=True).items():
                name = key.rsplit("/", 1)[-1]
                if not name.endswith(".parquet") or name.startswith((".", "_")):
                    continue
                rel = key[len(root) + 1 :]
                dst = local / rel
                if dst.exists() and dst.stat().st_size == info.get("size"):
                    n += 1
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = dst.with_name(f".{dst.name}.tmp")
                fs.get_file(key, str(tmp))
                tmp.replace(dst)
                n += 1
    except OSError as exc:
        raise DatasetError(f"{url}: cannot read the dataset ({exc})") from None
    if n == 0:
        raise DatasetError(f"{url}: no measurement files found")
    return local


def localise_inputs(inputs: list[str]) -> tuple[list[str], dict[str, str]]:
    """Replace URLs by local mirrors; return the new inputs and {local path: url}."""
    out, origin = [], {}
    for item in inputs:
        if is_remote(item):
            local = fetch_remote(item)
            out.append(str(local))
            origin[str(local)] = item
        else:
            out.append(item)
    return out, origin
