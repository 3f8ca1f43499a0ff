"""Arrow files written by the build's worker processes, in the layout `datasets` loads.

A saved `datasets.Dataset` is a directory of Arrow IPC stream files (`data-00000-of-000NN.arrow`)
beside `state.json` (their names, in order) and `dataset_info.json` (the features). The stages
write those files from their workers and then only name them here, so that no process copies
the data a second time (`Dataset.save_to_disk` would read and rewrite every byte in one
process). Workers use pyarrow alone: the schema they write carries the `datasets` features in
its metadata, made once in the main process by `dataset_schema`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa

STATE_FILE = "state.json"
DIGEST_SIZE = 16


def dataset_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` with the metadata `datasets` writes into its own files (the features)."""
    from datasets import Features

    return Features.from_arrow_schema(schema).arrow_schema


def data_file_name(index: int, count: int) -> str:
    """The name `datasets` gives file `index` of `count` of a saved dataset."""
    return f"data-{index:05d}-of-{count:05d}.arrow"


def write_table(path: Path, table: pa.Table, schema: pa.Schema, rows_per_batch: int,
                digest: bool = True) -> str:
    """Write `table` as an Arrow IPC stream file at `path` (atomically: a crash leaves no file
    under that name), in batches of `rows_per_batch` rows, so that the bytes depend on the rows
    alone and not on how they were gathered; returns the blake2b digest of those bytes (or ""
    without `digest`: a scratch file)."""
    table = table.cast(schema).combine_chunks()
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in table.to_batches(max_chunksize=rows_per_batch):
            writer.write_batch(batch)
    written = file_digest(tmp) if digest else ""
    os.replace(tmp, path)
    return written


def file_digest(path: Path) -> str:
    """blake2b of a file's bytes (read back from the page cache just after writing)."""
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE)
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def read_table(path: Path) -> pa.Table:
    """An Arrow IPC stream file, memory-mapped (no copy; shared with other readers)."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all()


def dataset_files(directory: Path) -> list[Path]:
    """The data files of a saved dataset, in row order (as its state.json names them)."""
    state = json.loads((Path(directory) / STATE_FILE).read_text(encoding="utf-8"))
    return [Path(directory) / entry["filename"] for entry in state["_data_files"]]


def read_dataset(directory: Path) -> pa.Table:
    """A saved dataset's rows as one table of its memory-mapped files, without `datasets`."""
    return pa.concat_tables(read_table(path) for path in dataset_files(directory))


def take_rows(data, rows):
    """The rows `rows` (row numbers, in the order given) of a table or chunked array, as one
    chunk. Each run of consecutive row numbers is a zero-copy slice: pyarrow's `take` on a
    chunked column of strings copies whole chunks to pick a few rows from them (measured: 50
    ms for 64 pages of a 1 GB build's text column, a fifth of the examples stage's time)."""
    import numpy as np

    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return data.slice(0, 0)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts, ends = np.concatenate(([0], breaks)), np.concatenate((breaks, [len(rows)]))
    pieces = [data.slice(int(rows[start]), int(end - start)) for start, end in zip(starts, ends)]
    if isinstance(data, pa.Table):
        return pa.concat_tables(pieces).combine_chunks()
    return pa.chunked_array([chunk for piece in pieces for chunk in piece.chunks],
                            data.type).combine_chunks()


def write_dataset_dir(directory: Path, files: list[str], schema: pa.Schema,
                      fingerprint: str) -> None:
    """Make `directory`, which holds `files` (written with `schema`, in row order), a saved
    dataset that `datasets.load_from_disk` opens."""
    import datasets

    state = {"_data_files": [{"filename": name} for name in files],
             "_fingerprint": fingerprint[:16], "_format_columns": None, "_format_kwargs": {},
             "_format_type": None, "_output_all_columns": False, "_split": None}
    (Path(directory) / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True),
                                              encoding="utf-8")
    features = datasets.Features.from_arrow_schema(schema)
    datasets.DatasetInfo(features=features).write_to_directory(str(directory))


def join_datasets(sources: list[Path], out: Path, fingerprint: str) -> None:
    """Make `out` one saved dataset of the rows of the saved datasets `sources`, in order, by
    renaming their data files (nothing is copied; `sources` are left without them)."""
    files = [path for source in sources for path in dataset_files(source)]
    Path(out).mkdir(parents=True, exist_ok=True)
    names = [data_file_name(number, len(files)) for number in range(len(files))]
    for path, name in zip(files, names):
        os.replace(path, Path(out) / name)
    with pa.memory_map(str(Path(out) / names[0])) as source:
        schema = pa.ipc.open_stream(source).schema
    write_dataset_dir(out, names, schema, fingerprint)


def combined_digest(digests: list[str]) -> str:
    """One digest of several files' digests, in order."""
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE)
    for part in digests:
        digest.update(part.encode())
    return digest.hexdigest()
