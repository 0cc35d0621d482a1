"""How far float rounding moves Extremal Perturbation's maps (the README's numbers).

Usage: python scripts/extremal_rounding.py [--iterations 300]

On three sample photos (embedded EfficientNet-Lite0, 224 px, the method's defaults, each
image's top-1) it explains each photo four ways: as it is, the same call again, the model
run channels-last (the same arithmetic summed in another order) and the model on one CPU
thread. It prints the largest absolute difference to the first map and Pearson r for each.
Minutes on a 2-core CPU.
"""

import argparse

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
    a = ap.parse_args(argv)
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
        parts = [f"{label} max {float((ref - m).abs().max()):.3f} r {pearson(ref, m):.4f}"
                 for label, m in (("again", again), ("channels-last", nhwc), ("1 thread", one))]
        print(f"{name}: " + " | ".join(parts), flush=True)


if __name__ == "__main__":
    main()
