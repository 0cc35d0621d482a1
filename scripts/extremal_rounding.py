"""How far float rounding moves Extremal Perturbation's maps (the README's numbers).

Usage: python scripts/extremal_rounding.py [--iterations 300] [--out benchmarks/results/extremal/rounding.json]

On three sample photos (embedded EfficientNet-Lite0, 224 px, the method's defaults, each
image's top-1) it explains each photo four ways: as it is, the same call again, the model
run channels-last (the same arithmetic summed in another order) and the model on one CPU
thread. It prints the largest absolute difference to the first map and Pearson r for each,
and writes them to ``--out`` as JSON. Minutes on a 2-core CPU.
"""

import argparse
import json
import platform
from pathlib import Path

import torch
from PIL import Image
from skimage import data

import cameras
from cameras.core.memory import channels_last


class ChannelsLastInput(torch.nn.Module):
    """The wrapped model fed channels-last inputs (its weights are made channels-last by the caller)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.contiguous(memory_format=torch.channels_last))


def pearson(a, b) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "benchmarks" / "results"
                    / "extremal" / "rounding.json")
    a = ap.parse_args(argv)
    rows = []
    bundle = cameras.load_model("efficientnet_lite0")
    model = bundle.model.eval()
    threads = torch.get_num_threads()
    for name in ("chelsea", "astronaut", "coffee"):
        x = bundle.prepare(Image.fromarray(getattr(data, name)()), square=True)
        ep = cameras.ExtremalPerturbation(model, iterations=a.iterations, progress=False)
        ref, again = ep(x).maps, ep(x).maps
        with channels_last(model):
            nhwc = cameras.ExtremalPerturbation(ChannelsLastInput(model), iterations=a.iterations,
                                                progress=False)(x).maps
        torch.set_num_threads(1)
        try:
            one = ep(x).maps
        finally:
            torch.set_num_threads(threads)
        row = {"photo": name, **{label: {"max_abs_diff": float((ref - m).abs().max()), "pearson_r": pearson(ref, m)}
                                 for label, m in (("again", again), ("channels_last", nhwc), ("one_thread", one))}}
        rows.append(row)
        print(f"{name}: " + " | ".join(f"{k} max {v['max_abs_diff']:.3f} r {v['pearson_r']:.4f}"
                                       for k, v in row.items() if k != "photo"), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"model": bundle.name, "iterations": a.iterations, "threads": threads,
                                 "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                                 "rows": rows}, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
