"""`cameras evaluate`: every (image, ground-truth class, method) item, resumable, with a report.

Rows go to ``results.csv`` one at a time, each as a single append of a complete line
followed by fsync, so a run killed at any moment loses at most the items in flight; a
rerun with the same folder reads the finished rows (dropping a torn last line, if any),
skips them and appends the rest in the same order, so a finished rerun equals an
uninterrupted run. ``summary.json`` and ``report.md`` are rewritten atomically from all rows.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import torch

from .core.base import SaliencyMethod
from .core.guard import frozen_eval
from .data.items import Item
from .images import load_image, resize_image
from .io import encode_json, write_files_atomically
from .metrics import insertion_deletion, is_difficult, map_density, pointing_accuracy, pointing_trial
from .models import ModelBundle

COLUMNS = ["image", "class", "method", "pointing_hit", "difficult", "rho_plus", "rho_minus",
           "insertion_auc", "deletion_auc", "seconds", "kept_scales"]
METRICS = ("pointing", "rho", "insdel")
CURVE_POINTS = 101
PAPER = {
    "pointing_game": "CAMERAS paper Table 1 (mean per-class accuracy %, all / difficult; TorchRay's VOC/COCO models)",
    "pointing_rows": {
        "gradient": "VOC07 VGG16 76.3 / 56.9, ResNet-50 72.3 / 56.8; COCO14 VGG16 37.7 / 31.4, ResNet-50 35.0 / 29.4",
        "rise": "VOC07 VGG16 86.9 / 75.1, ResNet-50 86.4 / 78.8; COCO14 VGG16 50.8 / 45.3, ResNet-50 54.7 / 50.0",
        "gradcam": "VOC07 VGG16 86.6 / 74.0, ResNet-50 90.4 / 82.3; COCO14 VGG16 54.2 / 49.0, ResNet-50 57.3 / 52.3",
        "extremal": "VOC07 VGG16 88.0 / 76.1, ResNet-50 88.9 / 78.7; COCO14 VGG16 51.5 / 45.9, ResNet-50 56.5 / 51.5",
        "normgrad": "VOC07 VGG16 81.9 / 64.8, ResNet-50 84.6 / 72.2",
        "cameras": "VOC07 VGG16 86.2 / 76.2, ResNet-50 94.2 / 88.8; COCO14 VGG16 55.4 / 50.7, ResNet-50 69.9 / 66.4",
    },
    "rho": {  # paper Table 2, ImageNet val: ρ⁺ / ρ⁻ per model
        "normgrad": "ResNet-50 1.67 / 0.96, DenseNet-121 1.76 / 1.02, Inception-V3 2.19 / 0.95",
        "gradcam": "ResNet-50 2.33 / 0.86, DenseNet-121 2.35 / 0.94, Inception-V3 2.18 / 1.04",
        "cameras": "ResNet-50 3.20 / 0.81, DenseNet-121 3.23 / 0.83, Inception-V3 3.15 / 0.93",
    },
    "insdel": "RISE paper (ResNet-50, 10,000 ImageNet val images): RISE deletion AUC 0.1048, insertion AUC 0.7719",
}


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)
    return str(v)


class ResultStore:
    """Append-only results.csv (+ curves.jsonl) that survives being killed at any moment."""

    def __init__(self, out_dir: Path, shard: str | None = None) -> None:
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if shard is None:
            self.csv = self.dir / "results.csv"
            self.curves = self.dir / "curves.jsonl"
        else:  # one rank's rows in a distributed run, merged by rank 0 at the end
            (self.dir / "shards").mkdir(exist_ok=True)
            self.csv = self.dir / "shards" / f"{shard}.csv"
            self.curves = self.dir / "shards" / f"{shard}.jsonl"

    @classmethod
    def all_stores(cls, out_dir: Path) -> list["ResultStore"]:
        """The main store and every shard store left in ``out_dir`` (finished rows of any run)."""
        stores = [cls(out_dir)]
        for f in sorted((Path(out_dir) / "shards").glob("*.csv")):
            stores.append(cls(out_dir, f.stem))
        return stores

    @staticmethod
    def key(row: dict) -> tuple[str, str, str]:
        return (str(row["image"]), str(row["class"]), str(row["method"]))

    def _repair(self, path: Path) -> bytes:
        """Drop a torn last line (no newline) so appends start on a line boundary."""
        if not path.exists():
            return b""
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            data = data[: data.rfind(b"\n") + 1]
            with open(path, "r+b") as fh:
                fh.truncate(len(data))
        return data

    def load(self) -> list[dict]:
        """Finished rows, in file order (a torn or malformed last line is discarded)."""
        data = self._repair(self.csv)
        self._repair(self.curves)
        if not data:
            return []
        rows = list(csv.DictReader(io.StringIO(data.decode())))
        good = [r for r in rows if None not in r and all(k in r for k in COLUMNS)]
        return good

    def load_curves(self) -> dict[tuple, dict]:
        out = {}
        if self.curves.exists():
            for line in self._repair(self.curves).decode().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                out[(rec["image"], str(rec["class"]), rec["method"])] = rec
        return out

    def _append(self, path: Path, line: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, row: dict, curves: dict | None = None) -> None:
        """Write one finished item: its curves (if any) first, then its row."""
        if curves is not None:
            self._append(self.curves, (json.dumps(curves) + "\n").encode())
        if not self.csv.exists() or self.csv.stat().st_size == 0:
            self._append(self.csv, (",".join(COLUMNS) + "\n").encode())
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([_fmt(row.get(c)) for c in COLUMNS])
        self._append(self.csv, buf.getvalue().encode())


def merge_shards(out_dir: Path, order: list[tuple[str, str, str]]) -> list[dict]:
    """Merge results.csv and every shard into results.csv (and curves.jsonl), atomically.

    Rows are de-duplicated by (image, class, method) and put in ``order`` (the canonical
    work order, so a merged run equals a single-process one); shard files are removed only
    after the merged files are in place.
    """
    stores = ResultStore.all_stores(out_dir)
    rows: dict[tuple, dict] = {}
    curves: dict[tuple, dict] = {}
    for st in stores:
        for r in st.load():
            rows.setdefault(ResultStore.key(r), r)
        for k, v in st.load_curves().items():
            curves.setdefault(k, v)
    rank = {k: i for i, k in enumerate(order)}
    keys = sorted(rows, key=lambda k: (rank.get(k, len(rank)), k))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for k in keys:
        w.writerow([rows[k].get(c, "") for c in COLUMNS])
    files = {Path(out_dir) / "results.csv": buf.getvalue().encode()}
    cur = [json.dumps(curves[k]) for k in keys if k in curves]
    if cur:
        files[Path(out_dir) / "curves.jsonl"] = ("\n".join(cur) + "\n").encode()
    write_files_atomically(files)
    for st in stores[1:]:
        for f in (st.csv, st.curves):
            f.unlink(missing_ok=True)
    return [rows[k] for k in keys]


def work_list(items: list[Item], methods: list[str]) -> list[tuple[Item, int, str]]:
    """Deterministic (item, class, method) work, ordered image → method → class; VOC classes
    whose boxes are all difficult are skipped."""
    out = []
    for it in items:
        classes = [c for c in it.classes() if not it.all_difficult(c)]
        for m in methods:  # image, then method, then class: the order items are processed in
            for cls in classes:
                out.append((it, cls, m))
    return out


def _resample(curve: np.ndarray) -> list[float]:
    xs = np.linspace(0, 1, len(curve))
    return np.interp(np.linspace(0, 1, CURVE_POINTS), xs, curve).round(6).tolist()


def evaluate_items(
    items: list[Item],
    bundle: ModelBundle,
    methods: dict[str, SaliencyMethod],
    metrics: set[str],
    out_dir: Path,
    square: bool = False,
    insdel_step: int = 224,
    batch_size: int = 32,
    progress: bool | None = None,
    rank: int = 0,
    world: int = 1,
    barrier=None,
    run_id: str = "run",
) -> list[dict]:
    """Run every unfinished (image, class, method) item and append its row; return all rows.

    Distributed (``world`` > 1, one call per rank, ``barrier`` synchronising them): every
    rank reads the finished rows of results.csv and of any shards left by earlier runs
    (whatever their process count), takes every ``world``-th unfinished item from rank
    ``rank`` on, appends its rows to its own shard file, and after a final barrier rank 0
    merges everything into results.csv in the canonical order. Other ranks return [].
    """
    from tqdm import tqdm

    full = work_list(items, list(methods))
    order = [(w[0].name, str(w[1]), w[2]) for w in full]
    done = {ResultStore.key(r) for st in ResultStore.all_stores(out_dir) for r in st.load()}
    if barrier is not None:
        barrier()  # everyone has read the finished rows before anyone writes
    todo = [w for w, k in zip(full, order) if k not in done][rank::world]
    store = ResultStore(out_dir, None if world == 1 else f"{run_id}-rank{rank}")
    device = bundle.device
    bar = tqdm(total=len(todo), desc=f"evaluate{f' rank {rank}' if world > 1 else ''}", unit="item",
               disable=(None if progress is None else not progress) if rank == 0 else True)
    by_image: dict[Path, list] = {}
    for w in todo:
        by_image.setdefault(w[0].image, []).append(w)
    try:
        for path, work in by_image.items():
            item = work[0][0]
            img = load_image(path)
            x01 = resize_image(img, bundle.input_size, square, bundle.interpolation, device)
            x = bundle.normalize(x01)
            for m_name in dict.fromkeys(wk[2] for wk in work):
                cls_list = [wk[1] for wk in work if wk[2] == m_name]
                method = methods[m_name]
                xb = x.expand(len(cls_list), -1, -1, -1)
                target = torch.tensor(cls_list, device=device)
                res = method(xb, target=target)
                rows = [dict(image=item.name, **{"class": c}, method=m_name, seconds=res.seconds / len(cls_list),
                             kept_scales=" ".join(map(str, res.kept_scales[i])) if res.kept_scales else "")
                        for i, c in enumerate(cls_list)]
                with frozen_eval(bundle.model):  # metrics see the model in eval mode, restored after
                    curves = _score(rows, item, res.maps, m_name, target, x01, xb, bundle, metrics, insdel_step, batch_size)
                for row, cur in zip(rows, curves):
                    store.append(row, cur)
                    bar.update(1)
    finally:
        bar.close()
    if barrier is not None:
        barrier()
    if rank != 0:
        return []
    if world > 1 or len(ResultStore.all_stores(out_dir)) > 1:
        return merge_shards(out_dir, order)
    return store.load()


def _score(rows, item, maps, m_name, target, x01, xb, bundle, metrics, insdel_step, batch_size) -> list[dict | None]:
    """Fill each row's metrics in place; return the per-row insertion/deletion curves (or None)."""
    cls_list = target.tolist()
    curves: list[dict | None] = [None] * len(cls_list)
    if "pointing" in metrics:
        n_classes = len(item.classes())
        for i, c in enumerate(cls_list):
            region = torch.from_numpy(item.region(c)).to(maps.device)
            rows[i]["pointing_hit"] = pointing_trial(maps[i], region, input_level=m_name == "gradient")
            rows[i]["difficult"] = is_difficult(float(region.sum()), region.numel(), n_classes > 1)
    if "rho" in metrics:
        rp, rm = map_density(bundle.model, x01.expand(len(cls_list), -1, -1, -1), maps, target, bundle.normalize)
        for i in range(len(cls_list)):
            rows[i]["rho_plus"], rows[i]["rho_minus"] = float(rp[i]), float(rm[i])
    if "insdel" in metrics:
        r = insertion_deletion(bundle.model, xb, maps, step=insdel_step, batch_size=batch_size)
        for i, c in enumerate(cls_list):
            rows[i]["insertion_auc"] = float(r["insertion_auc"][i])
            rows[i]["deletion_auc"] = float(r["deletion_auc"][i])
            curves[i] = {"image": item.name, "class": c, "method": m_name,
                         "insertion": _resample(r["insertion"][i].cpu().numpy()),
                         "deletion": _resample(r["deletion"][i].cpu().numpy())}
    return curves


def _num(v: str) -> float | None:
    return None if v in ("", None) else float(v)


def summarize(rows: list[dict]) -> dict:
    """The summary.json dictionary from result rows (strings as read from the CSV)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    out: dict = {k: {} for k in ("pointing_game", "pointing_game_difficult", "rho_plus", "rho_minus",
                                 "insertion_auc", "deletion_auc", "items")}
    for m in methods:
        mr = [r for r in rows if r["method"] == m]
        out["items"][m] = len(mr)
        trials = [(int(r["class"]), None if r["pointing_hit"] == "" else r["pointing_hit"] == "1") for r in mr]
        out["pointing_game"][m] = pointing_accuracy(trials)
        out["pointing_game_difficult"][m] = pointing_accuracy(
            [t for t, r in zip(trials, mr) if r["difficult"] == "1"])
        for col in ("rho_plus", "rho_minus", "insertion_auc", "deletion_auc"):
            vals = [_num(r[col]) for r in mr if r[col] != ""]
            out[col][m] = float(np.mean(vals)) if vals else None
    return out


def write_report(out_dir: Path, rows: list[dict], meta: dict) -> dict:
    """Write summary.json, report.md, metrics.png (bars) and curves.png (mean ins/del curves)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    summary = summarize(rows)
    methods = list(summary["items"])
    files: dict[Path, bytes] = {out_dir / "summary.json": encode_json(summary)}
    metric_keys = [k for k in ("pointing_game", "pointing_game_difficult", "rho_plus", "rho_minus", "insertion_auc", "deletion_auc")
                   if any(v is not None for v in summary[k].values())]
    if metric_keys and methods:
        fig, axes = plt.subplots(1, len(metric_keys), figsize=(3.2 * len(metric_keys), 3), squeeze=False)
        for ax, k in zip(axes[0], metric_keys):
            vals = [summary[k][m] or 0.0 for m in methods]
            ax.bar(methods, vals, color="tab:blue")
            ax.set_title(k, fontsize=9)
            ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        files[out_dir / "metrics.png"] = buf.getvalue()
    curves = ResultStore(out_dir).load_curves()
    finished = {ResultStore.key(r) for r in rows}
    curves = {k: v for k, v in curves.items() if k in finished}
    if curves:
        fig, axes = plt.subplots(1, 2, figsize=(8, 3))
        xs = np.linspace(0, 1, CURVE_POINTS)
        for m in methods:
            cs = [v for k, v in curves.items() if k[2] == m]
            if cs:
                axes[0].plot(xs, np.mean([c["insertion"] for c in cs], 0), label=m)
                axes[1].plot(xs, np.mean([c["deletion"] for c in cs], 0), label=m)
        for ax, t in zip(axes, ("insertion (higher is better)", "deletion (lower is better)")):
            ax.set_title(t, fontsize=9)
            ax.set_xlabel("fraction of pixels")
            ax.legend(fontsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        files[out_dir / "curves.png"] = buf.getvalue()
    files[out_dir / "report.md"] = _report_md(summary, meta, "metrics.png" in {p.name for p in files},
                                              "curves.png" in {p.name for p in files}).encode()
    write_files_atomically(files)
    return summary


def _report_md(summary: dict, meta: dict, bars: bool, curves: bool) -> str:
    def f(v, pct=False):
        return "–" if v is None else (f"{100 * v:.1f}" if pct else f"{v:.4f}")

    lines = ["# Evaluation report", "", f"Data: `{meta.get('data')}` ({meta.get('format')}), model `{meta.get('model')}`, "
             f"{meta.get('images')} images, metrics {', '.join(meta.get('metrics', []))}.", "",
             "| method | items | pointing % (all / difficult) | ρ⁺ | ρ⁻ | insertion AUC | deletion AUC |",
             "|---|---|---|---|---|---|---|"]
    for m, n in summary["items"].items():
        lines.append(f"| {m} | {n} | {f(summary['pointing_game'][m], True)} / {f(summary['pointing_game_difficult'][m], True)} | "
                     f"{f(summary['rho_plus'][m])} | {f(summary['rho_minus'][m])} | {f(summary['insertion_auc'][m])} | "
                     f"{f(summary['deletion_auc'][m])} |")
    lines += ["", "## Published numbers beside ours", "", f"Pointing game: {PAPER['pointing_game']}.", "",
              "| method | ours (all / difficult) | paper |", "|---|---|---|"]
    for m in summary["items"]:
        lines.append(f"| {m} | {f(summary['pointing_game'][m], True)} / {f(summary['pointing_game_difficult'][m], True)} | "
                     f"{PAPER['pointing_rows'].get(m, '–')} |")
    lines += ["", "Map density, CAMERAS paper Table 2 (ImageNet val, ρ⁺ / ρ⁻):", "", "| method | ours ρ⁺ / ρ⁻ | paper |", "|---|---|---|"]
    for m in summary["items"]:
        lines.append(f"| {m} | {f(summary['rho_plus'][m])} / {f(summary['rho_minus'][m])} | {PAPER['rho'].get(m, '–')} |")
    lines += ["", f"Insertion/deletion: {PAPER['insdel']}.", "",
              "Differences from the paper come from the model (weights, architecture), the data and",
              "its size, and the device; the protocol is METHOD.md §3.", ""]
    if bars:
        lines += ["![metrics](metrics.png)", ""]
    if curves:
        lines += ["![mean insertion and deletion curves](curves.png)", ""]
    return "\n".join(lines)
