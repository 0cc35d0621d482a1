"""The one resumable engine: per-item runs split across torchrun ranks, one JSON record per finished item.

Used by ``cameras evaluate``, ``cameras experiment``, ``cameras attack`` and ``cameras sanity``. Every item has a
key (e.g. the image path); a finished item's record is appended as one complete JSON line
and fsynced, to ``<name>.records.jsonl`` in a single process or to
``shards/<name>-<run id>-rank<r>.jsonl`` under torchrun. A rerun (with any number of
processes) reads every finished record, skips those items and runs the rest; at the end
rank 0 merges everything into ``<name>.records.jsonl`` in the canonical item order, so the
result is the same as one uninterrupted single-process run. ``<name>.config.json`` holds
the settings of the run; a rerun with other settings into the same folder is refused rather
than mixing results.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path

from .core.errors import CamerasError, InputError
from .io import encode_json, write_files_atomically


class RecordStore:
    """Append-only JSON-lines file of finished items that survives being killed at any moment.

    Example:
        >>> import tempfile
        >>> st = RecordStore(Path(tempfile.mkdtemp()), "demo")
        >>> st.append({"key": "a.jpg", "value": 1.5})
        >>> st.load()
        {'a.jpg': {'key': 'a.jpg', 'value': 1.5}}
    """

    def __init__(self, out_dir: Path, name: str, shard: str | None = None) -> None:
        self.dir = Path(out_dir)
        self.path = (self.dir / f"{name}.records.jsonl" if shard is None
                     else self.dir / "shards" / f"{name}-{shard}.jsonl")

    @classmethod
    def all_stores(cls, out_dir: Path, name: str) -> list["RecordStore"]:
        """The main store and every shard of ``name`` left in ``out_dir`` by any earlier run."""
        stores = [cls(out_dir, name)]
        for f in sorted((Path(out_dir) / "shards").glob(f"{name}-*.jsonl")):
            stores.append(cls(out_dir, name, f.stem[len(name) + 1:]))
        return stores

    def load(self) -> dict[str, dict]:
        """Finished records by key, in file order; a torn last line is cut off the file."""
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            data = data[: data.rfind(b"\n") + 1]
            with open(self.path, "r+b") as fh:
                fh.truncate(len(data))
        out: dict[str, dict] = {}
        for line in data.decode().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "key" in rec:
                out.setdefault(str(rec["key"]), rec)
        return out

    def append(self, record: dict) -> None:
        """Append one finished record (must hold ``"key"``) as a single fsynced line."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def check_config(out_dir: Path, name: str, config: dict, extendable: tuple[str, ...] = ()) -> dict:
    """Refuse a folder holding a run with other settings; return the settings to record.

    Keys in ``extendable`` hold dicts (e.g. methods → their options) to which a rerun may
    add entries; entries both runs have must be equal. The result is the union.
    """
    want = json.loads(json.dumps(config))
    path = Path(out_dir) / f"{name}.config.json"
    if not path.exists():
        return want
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return want
    diff, merged = [], dict(want)
    for k in sorted(set(old) | set(want)):
        a, b = old.get(k), want.get(k)
        if k in extendable and isinstance(a, dict) and isinstance(b, dict):
            changed = sorted(i for i in set(a) & set(b) if a[i] != b[i])
            diff += [(f"{k}.{i}", a[i], b[i]) for i in changed]
            merged[k] = {**a, **b}
        elif a != b:
            diff.append((k, a, b))
    if diff:
        shown = ", ".join(f"{k}: {a!r} before, {b!r} now" for k, a, b in diff)
        raise InputError(f"{out_dir} holds a run of {name} with other settings ({shown}); "
                         "use another --out folder, or delete this one to start over")
    return merged


def run_items(
    keys: list[str],
    work: Callable,
    out_dir: Path,
    name: str,
    config: dict,
    rank: int = 0,
    world: int = 1,
    barrier: Callable[[], None] | None = None,
    run_id: str = "run",
    progress: bool | None = None,
    group: Callable[[int], Hashable] | None = None,
    extendable: tuple[str, ...] = (),
    result_keys: Callable[[dict], list[str]] | None = None,
) -> list[dict] | None:
    """Run ``work`` for every unfinished item ``keys[i]``; return all records in key order.

    Args:
        keys: one unique string per item (e.g. the image path), in the canonical order.
        work: without ``group``, ``work(i)`` computes item ``i``'s record, a JSON-serialisable
            dict (``"key"`` is added). With ``group``, ``work(indices)`` gets the unfinished
            items of one group (in key order) and yields ``(i, record)`` pairs; each record
            is stored as soon as it is yielded.
        out_dir: folder of the records (and of any files ``work`` writes).
        name: the run's name (``"attack"``, ``"n_sensitivity"``, …), naming its files.
        config: the run's settings; a folder holding a run with other settings is refused.
        rank, world, barrier, run_id: this process's place under torchrun (see
            :func:`cameras.distributed.launch`); each rank takes every ``world``-th
            unfinished item and rank 0 merges after a final barrier.
        progress: tqdm bar on rank 0 (None: on a terminal only).
        group: items with equal ``group(i)`` are computed together (e.g. every class of one
            image, batched); ranks split the work by groups.
        extendable: keys of ``config`` holding dicts that a rerun may extend (evaluate's
            methods: a rerun may add a method, but not change one's options).
        result_keys: the keys whose records the run returns, in order, given the merged
            settings (e.g. evaluate's: this run's images under every method the folder holds,
            so that a rerun naming only a new method still returns the earlier methods' rows).
            Keys of it without a record are left out; every one of ``keys`` must have one.
            None: ``keys``.

    Returns:
        On rank 0 the records of ``result_keys`` (or ``keys``), in that order; None elsewhere.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> [r["square"] for r in run_items(["2", "3"], lambda i: {"square": (i + 2) ** 2}, d, "demo", {},
        ...                                 progress=False)]
        [4, 9]
    """
    from tqdm import tqdm

    if len(set(keys)) != len(keys):
        raise InputError(f"{name}: the items are not unique (an image listed twice?)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = check_config(out_dir, name, config, extendable)
    done: set[str] = set()
    for st in RecordStore.all_stores(out_dir, name):
        done.update(st.load())
    if barrier is not None:
        barrier()  # everyone has read the finished records before anyone writes
    if rank == 0:
        write_files_atomically({out_dir / f"{name}.config.json": encode_json(config)})
    unfinished = [i for i, k in enumerate(keys) if k not in done]
    groups: dict[Hashable, list[int]] = {}
    for i in unfinished:
        groups.setdefault(i if group is None else group(i), []).append(i)
    todo = list(groups.values())[rank::world]
    store = RecordStore(out_dir, name, None if world == 1 else f"{run_id}-rank{rank}")
    bar = tqdm(total=sum(map(len, todo)), desc=f"{name}{f' rank {rank}' if world > 1 else ''}", unit="item",
               disable=(None if progress is None else not progress) if rank == 0 else True)
    try:
        for indices in todo:
            pairs: Iterable[tuple[int, dict]] = [(indices[0], work(indices[0]))] if group is None else work(indices)
            for i, rec in pairs:
                rec = dict(rec)
                rec["key"] = keys[i]
                store.append(rec)
                bar.update(1)
    finally:
        bar.close()
    if barrier is not None:
        barrier()
    if rank != 0:
        return None
    order = keys if result_keys is None else list(dict.fromkeys([*result_keys(config), *keys]))
    recs = merge_records(out_dir, name, order)
    have = {r["key"] for r in recs}
    missing = [k for k in keys if k not in have]
    if missing:
        raise CamerasError(f"{name}: {len(missing)} of {len(keys)} items have no record (first: {missing[0]}); "
                           f"is {out_dir} on a file system every rank sees? A rerun completes them")
    return recs


def merge_records(out_dir: Path, name: str, keys: list[str]) -> list[dict]:
    """Merge the main records file and every shard of ``name`` into one file in ``keys`` order.

    The merged file is written atomically before any shard is removed, so a crash during the
    merge loses nothing; records of keys not in ``keys`` (another selection) are kept at the end.
    """
    stores = RecordStore.all_stores(out_dir, name)
    recs: dict[str, dict] = {}
    for st in stores:
        for k, v in st.load().items():
            recs.setdefault(k, v)
    order = {k: i for i, k in enumerate(keys)}
    merged = sorted(recs, key=lambda k: (order.get(k, len(order)), k))
    if len(stores) > 1 or recs:
        body = "".join(json.dumps(recs[k]) + "\n" for k in merged)
        write_files_atomically({stores[0].path: body.encode()})
    for st in stores[1:]:
        st.path.unlink(missing_ok=True)
    return [recs[k] for k in keys if k in recs]


def placement(run) -> dict:
    """``run_items`` keyword arguments from a :class:`cameras.distributed.Launch` (None: one process).

    Example:
        >>> placement(None)
        {'rank': 0, 'world': 1, 'barrier': None, 'run_id': 'run'}
    """
    if run is None:
        return {"rank": 0, "world": 1, "barrier": None, "run_id": "run"}
    return {"rank": run.rank, "world": run.world, "barrier": run.barrier, "run_id": run.run_id}


def model_fingerprint(model) -> str:
    """A short summary of a model's weights (count, sum, sum of squares in float64), so that a
    resumed run can tell other weights under the same model name.

    Example:
        >>> import torch
        >>> lin = torch.nn.Linear(2, 1)
        >>> with torch.no_grad():
        ...     _ = lin.weight.fill_(0.5), lin.bias.fill_(1.0)
        >>> model_fingerprint(lin)
        '3:2:1.5'
    """
    import torch

    n, total, squares = 0, 0.0, 0.0
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                d = t.detach().double()
                n += t.numel()
                total += float(d.sum())
                squares += float((d * d).sum())
    return f"{n}:{total:.9g}:{squares:.9g}"
