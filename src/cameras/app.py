"""`cameras app`: a local web page (Gradio) to explore one image's saliency maps.

The work is done by :class:`Explorer`, which knows nothing of Gradio (it is tested on its
own); :func:`build_app` lays the page out over it. Gradio is an optional extra:
``pip install 'cameras[app]'``.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .core.errors import CamerasError, Cancelled, ImageError, InputError
from .core.ops import resize_maps
from .core.targets import Target, class_scores
from .images import load_image
from .io import encode_npy, write_files_atomically
from .methods import available_methods, build_method, fastest_first, method_class
from .methods.cameras import DEFAULT_SCALES as CAMERAS_SCALES
from .methods.cameras import SCALE_RULES, check_scales, parse_scales
from .models import ModelBundle, load_model
from .names import DEFAULT_SCALE_RULE
from .viz import DEFAULT_FADE, encode_png, overlay, zero_map_note

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000
DEFAULT_SCALES = ",".join(map(str, CAMERAS_SCALES))
TOP_K = 5
MAX_ASPECT = 10  # longest over shortest side: the shorter side is scaled to the model's size, so a thin strip
# (8×20000 px, a few KB) would become a 224×560000 input
MAX_SCALE = 2048  # largest CAMERAS size accepted from the page (the input is resized by ζ_max/ζ_0)


def check_upload(path: str | os.PathLike, max_bytes: int = MAX_UPLOAD_BYTES,
                 max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read an uploaded file as RGB after checking its size, type and pixel count.

    Raises :class:`ImageError` with a message for the page: over ``max_bytes`` bytes, not an
    image, over ``max_pixels`` pixels or longer than 10:1 (both checked from the header, before
    decoding), or corrupt.

    Example:
        >>> from skimage import data
        >>> Image.fromarray(data.coffee()).save("/tmp/_up.png")
        >>> check_upload("/tmp/_up.png").size
        (600, 400)
        >>> try:
        ...     check_upload("/tmp/_up.png", max_pixels=1000)
        ... except ImageError as e:
        ...     for part in str(e).split("; "):
        ...         print(part)
        _up.png is 600×400 = 240,000 pixels, over this app's limit of 1,000
        downscale it or start the app with a larger --max-pixels
    """
    p = Path(path)
    name = p.name
    if not p.is_file():
        raise ImageError(f"{name}: the upload did not arrive; try again")
    size = p.stat().st_size
    if size > max_bytes:
        raise ImageError(f"{name} is {_size(size)}, over the {_size(max_bytes)} upload limit; "
                         "upload a smaller or compressed version")
    try:
        with Image.open(p) as im:
            w, h = im.size
    except Image.DecompressionBombError:
        raise ImageError(f"{name} has too many pixels to decode safely; downscale it") from None
    except Exception:
        raise ImageError(f"{name} is not an image (upload a JPEG, PNG, BMP, TIFF or WebP file)") from None
    if w * h > max_pixels:
        raise ImageError(f"{name} is {w}×{h} = {w * h:,} pixels, over this app's limit of {max_pixels:,}; "
                         "downscale it or start the app with a larger --max-pixels")
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageError(f"{name} is {w}×{h}, longer than {MAX_ASPECT}:1; its shorter side is scaled to the "
                         "model's input size, which would make a huge input: crop it")
    try:
        return load_image(p)
    except ImageError as e:
        raise ImageError(str(e).replace(str(p), name)) from None


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.1f} KB"


def parse_scale_text(text: str, max_scale: int = MAX_SCALE) -> list[int]:
    """``"224, 324,424"`` → [224, 324, 424], or a clear error (increasing sizes from 8 up to ``max_scale``).

    Example:
        >>> parse_scale_text("224, 448")
        [224, 448]
    """
    vals = parse_scales(str(text))
    if not vals:
        raise InputError("give at least one CAMERAS scale, like 224,324,424")
    vals = check_scales(vals)
    if max(vals) > max_scale:
        raise InputError(f"CAMERAS scales go up to {max_scale} here (got {max(vals)}); "
                         "larger inputs would not fit in memory")
    return vals


@dataclass
class Explanation:
    """One map of the current image: method, class, the map at image size, and its numbers."""

    method: str
    cls: int
    name: str
    probability: float
    seconds: float
    kept_scales: list[int] | None
    saliency: np.ndarray  # H×W float32 in [0, 1], the image's size
    total_scales: int | None = None  # CAMERAS: how many scales were tried

    @property
    def few_scales(self) -> bool:
        """CAMERAS used fewer than half of its scales (the map is close to a single-scale one)."""
        return self.kept_scales is not None and self.total_scales is not None and \
            2 * len(self.kept_scales) < self.total_scales

    @property
    def label(self) -> str:
        return f"{self.method} · {self.name} ({self.cls})"

    @property
    def stem(self) -> str:
        return f"{self.method}.{self.cls}"


@dataclass
class Explorer:
    """Loads models on demand and explains one image with several methods and classes.

    Example:
        >>> from skimage import data
        >>> ex = Explorer(["efficientnet_lite0"])
        >>> img = Image.fromarray(data.chelsea())
        >>> ex.top_classes(img, "efficientnet_lite0", 2)[0][:2]
        (285, 'Egyptian cat')
        >>> [e.label for e in ex.explain(img, "efficientnet_lite0", ["gradcam"], [285])]
        ['gradcam · Egyptian cat (285)']
    """

    models: list[str]
    device: str = "cpu"
    weights: dict[str, str] = field(default_factory=dict)  # model name → weights file
    stop: threading.Event = field(default_factory=threading.Event)  # set it to cancel a running explain
    _bundles: dict[str, ModelBundle] = field(default_factory=dict)

    def bundle(self, name: str) -> ModelBundle:
        if name not in self.models:
            raise InputError(f"model '{name}' is not served by this app; choose one of {', '.join(self.models)}")
        if name not in self._bundles:
            self._bundles[name] = load_model(name, self.weights.get(name), device=torch.device(self.device)) \
                .require_classifier("the app")
        return self._bundles[name]

    def top_classes(self, img: Image.Image, model: str, k: int = TOP_K) -> list[tuple[int, str, float]]:
        """The model's top ``k`` classes for the image: (id, name, probability)."""
        b = self.bundle(model)
        with torch.no_grad():
            probs = class_scores(b.model(b.prepare(img))).softmax(1)[0]
        p, i = probs.topk(min(k, probs.numel()))
        return [(int(c), b.class_name(int(c)), float(v)) for v, c in zip(p.tolist(), i.tolist())]

    def class_choices(self, img: Image.Image, model: str) -> tuple[list[tuple[str, str]], str]:
        """Dropdown choices (label, id): the top-k with probabilities first, then every class."""
        b = self.bundle(model)
        top = self.top_classes(img, model)
        seen = {c for c, _, _ in top}
        choices = [(f"{c} · {n} ({100 * p:.1f}%)", str(c)) for c, n, p in top]
        choices += [(f"{c} · {b.class_name(c)}", str(c)) for c in range(b.num_classes) if c not in seen]
        return choices, str(top[0][0])

    def find_classes(self, model: str, query: str) -> tuple[list[int], str]:
        """Class ids matching ``query`` (best first) and a sentence saying how they matched.

        Exact names and synonyms first, then names containing it, then near misses in spelling.

        Example:
            >>> Explorer(["efficientnet_lite0"]).find_classes("efficientnet_lite0", "espressso")[1]
            "no class is called 'espressso'; closest: 967 · espresso, 894 · wardrobe, 550 · espresso maker"
        """
        b = self.bundle(model)
        text = str(query).strip()
        if not text:
            return [], "type part of a class name, e.g. espresso"
        if text.isdigit() and int(text) < b.num_classes:
            return [int(text)], f"class {text} is {b.class_name(int(text))}"
        kind, ids = b.match_classes(text)
        named = ", ".join(f"{i} · {b.class_name(i)}" for i in ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8
                                                                        else "")
        if kind == "none":
            return [], f"no class name resembles '{text}'"
        if kind == "near":
            return ids, f"no class is called '{text}'; closest: {named}"
        return ids, f"{len(ids)} class{'es' if len(ids) > 1 else ''} match '{text}': {named}"

    def explain(self, img: Image.Image, model: str, methods: list[str], classes: list[int | Target],
                scales: list[int] | None = None, scale_rule: str | None = None) -> Iterator[Explanation]:
        """Yield one :class:`Explanation` per (method, class): methods outermost, fastest first.

        ``classes`` holds class ids or targets of :mod:`cameras.targets` (e.g. a
        ``SigmoidTarget`` for a multi-label model). ``scales`` and ``scale_rule`` set CAMERAS's
        options (None: its defaults).

        Setting ``self.stop`` from another thread raises :class:`Cancelled` at the running
        method's next step; explanations already yielded stay valid.
        """
        if not methods:
            raise InputError("choose at least one method")
        if not classes:
            raise InputError("choose at least one class")
        b = self.bundle(model)
        for c in classes:
            if not isinstance(c, Target) and not 0 <= int(c) < b.num_classes:
                raise InputError(f"class {c} does not exist; {model} has classes 0..{b.num_classes - 1}")
        x = b.prepare(img)
        with torch.no_grad():
            top1 = int(class_scores(b.model(x)).argmax(1)[0])
        H, W = img.height, img.width
        for m in fastest_first(list(methods)):
            opts = {}
            if method_class(m).name == "cameras":
                opts = {k: v for k, v in (("scales", scales), ("scale_rule", scale_rule)) if v}
            method = build_method(m, b, **opts)
            method.stop = self.stop
            for c in classes:
                # the image's own top-1 is explained as `cameras explain` does (target None: the
                # scale rule applies), so the app and the command line give the same map
                res = method(x, target=c if isinstance(c, Target) else (None if int(c) == top1 else int(c)))
                sal = resize_maps(res.maps[:1], (H, W))[0].clamp(0, 1).cpu().numpy().astype(np.float32)
                cls = int(res.targets[0])
                name = b.class_name(cls) if cls >= 0 else res.target.describe()
                yield Explanation(m, cls, name, float(res.probs[0]), res.seconds,
                                  res.kept_scales[0] if res.kept_scales else None, sal,
                                  len(res.extras["scales"]) if res.kept_scales else None)


def render(img: Image.Image, explanations: list[Explanation], alpha: float) -> list[tuple[Image.Image, str]]:
    """Overlays (PIL images with captions) for a gallery, at opacity ``alpha`` in [0, 1]."""
    rgb = np.asarray(img)
    return [(Image.fromarray(overlay(rgb, e.saliency, float(alpha), fade=DEFAULT_FADE)), e.label) for e in explanations]


def details_markdown(explanations: list[Explanation]) -> str:
    """A Markdown table of each map's probability, kept scales and time."""
    if not explanations:
        return ""
    rows = ["| method | class | probability | kept scales | seconds |", "|---|---|---|---|---|"]
    for e in explanations:
        kept = ", ".join(map(str, e.kept_scales)) if e.kept_scales is not None else "–"
        rows.append(f"| {e.method} | {e.cls} · {e.name} | {100 * e.probability:.1f}% | {kept} | {e.seconds:.2f} |")
    for e in explanations:
        if e.few_scales:
            rows.append(f"\n**Note:** {e.method} used {len(e.kept_scales)} of {e.total_scales} scales for "
                        f"{e.name}: the prediction changes at the others, so this map is close to a single-scale "
                        "one. Choose the scale rule `all` (the default) to keep every scale.")
        if not bool((e.saliency > 0).any()):
            rows.append(f"\n**Note:** {zero_map_note(e.method, e.name, None, 'another method may show some')}.")
    return "\n".join(rows)


def write_downloads(out_dir: Path, stem: str, img: Image.Image, explanations: list[Explanation], alpha: float,
                    maps: bool = True) -> list[str]:
    """Write each map as ``<stem>.<method>.<class>.npy`` (float32 H×W; skipped with ``maps=False``)
    and ``.png`` (overlay at opacity ``alpha``); return the paths, per map .npy then .png."""
    files: dict[Path, bytes] = {}
    rgb = np.asarray(img)
    for e in explanations:
        if maps:
            files[out_dir / f"{stem}.{e.stem}.npy"] = encode_npy(e.saliency)
        files[out_dir / f"{stem}.{e.stem}.png"] = encode_png(overlay(rgb, e.saliency, float(alpha), fade=DEFAULT_FADE))
    write_files_atomically(files)
    return [str(p) for p in files]


ERROR_STYLE = ("color:#7f0000;background:#fdecea;border:1px solid #e57373;border-left:6px solid #c62828;"
               "padding:8px 12px;border-radius:6px;font-weight:600")
# the overlays grid grows with its rows (no inner scrolling), cells keep each image's aspect ratio and
# captions sit below the image, not over it
PAGE_CSS = """
#overlays .grid-wrap { height: auto !important; max-height: none !important; overflow: visible !important; }
#overlays .thumbnail-item { aspect-ratio: auto !important; height: auto !important; flex-direction: column; }
#overlays .thumbnail-item img { height: auto !important; width: 100% !important; object-fit: contain; }
#overlays .caption-label { position: static !important; max-width: 100% !important; white-space: normal; }
"""
KEEP_SECONDS = 6 * 3600  # download and sample folders older than this are removed as new ones are made
SAMPLES = ("chelsea", "coffee", "astronaut", "rocket")  # scikit-image's bundled photos offered on the page


def status_html(text: str, error: bool = False) -> str:
    """The page's status line as HTML: plain text, or an error in a red box that stands out.

    Example:
        >>> status_html("224 < 324")
        '<div class="cameras-status">224 &lt; 324</div>'
        >>> status_html("bad", error=True).count("Error:")
        1
    """
    body = html.escape(str(text))
    if error:
        return f'<div class="cameras-status cameras-error" role="alert" style="{ERROR_STYLE}">Error: {body}</div>'
    return f'<div class="cameras-status">{body}</div>'


def build_app(models: list[str], device: str = "cpu", max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS,
              work_dir: str | os.PathLike | None = None, weights: dict[str, str] | None = None):
    """The Gradio Blocks page over an :class:`Explorer` (launch it with :func:`serve`).

    ``work_dir`` holds the sample copies and the downloads (None: a temporary folder, removed
    with the page or at exit); its ``run-*`` and ``upload-*`` folders older than
    ``KEEP_SECONDS`` are removed as new ones are made.

    Example:
        >>> type(build_app(["efficientnet_lite0"])).__name__
        'Blocks'
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    explorer = Explorer(list(models), device, dict(weights or {}))
    work = Path(work_dir or tempfile.mkdtemp(prefix="cameras-app-"))
    samples = work / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    from skimage import data

    sample_files = {}
    for name in SAMPLES:
        sample_files[name] = samples / f"{name}.jpg"
        if not sample_files[name].exists():
            Image.fromarray(getattr(data, name)()).save(sample_files[name], quality=95)
    keep = gr.update()  # an output left as it is

    def new_folder(kind: str) -> Path:
        """A fresh ``<kind>-<ns>`` folder in the work folder; folders of earlier runs older than
        ``KEEP_SECONDS`` go (a page still showing one loses its download links, not its overlays)."""
        now = time.time_ns()
        for old in [*work.glob("run-*"), *work.glob("upload-*")]:
            stamp = old.name.partition("-")[2]
            if stamp.isdigit() and now - int(stamp) > KEEP_SECONDS * 1e9:
                shutil.rmtree(old, ignore_errors=True)
        out = work / f"{kind}-{now}"
        out.mkdir()
        return out

    def on_upload(path, model):
        """New file: check it, show it, list its classes; results of the previous image go."""
        cleared = ([], "", None)
        no_classes = gr.update(choices=[], value=[])
        if not path:
            return None, no_classes, status_html("Upload an image or pick a sample."), None, *cleared
        try:
            img = check_upload(path, max_bytes, max_pixels)
            choices, top = explorer.class_choices(img, model)
        except (CamerasError, RuntimeError) as e:
            return None, no_classes, status_html(str(e), error=True), None, *cleared
        state = {"path": str(path), "stem": Path(path).stem, "explanations": []}
        return (img, gr.update(choices=choices, value=[top]),
                status_html(f"{Path(path).name}: {img.width}×{img.height}; top class {choices[0][0]}. "
                            "Choose methods and classes, then Explain."),
                state, *cleared)

    def on_sample(name):
        """Picking a sample loads it at once (a fresh copy, so the upload box changes)."""
        if not name:
            return keep
        src = sample_files[name]
        dst = new_folder("upload") / src.name
        shutil.copyfile(src, dst)
        return str(dst)

    def on_find(state, model, query, chosen):
        """Add the best match of a class search to the chosen classes; say what else matched."""
        if not state:
            return keep, status_html("Upload an image or pick a sample first.", error=True)
        ids, message = explorer.find_classes(model, query)
        if not ids:
            return keep, status_html(message, error=True)
        chosen = [str(c) for c in chosen or []]
        if str(ids[0]) not in chosen:
            chosen.append(str(ids[0]))
        name = explorer.bundle(model).class_name(ids[0])
        return gr.update(value=chosen), status_html(f"Added {ids[0]} · {name} ({message}).")

    def downloads_for(state, img, done, alpha):
        """Download paths: the .npy maps of this run (written once, kept in ``state["npy"]``) and
        .png overlays at this opacity. Returns (paths, npy paths)."""
        if not done:
            return None, []
        out = new_folder("run")
        npy = state.get("npy") or []
        files = write_downloads(out, state["stem"], img, done, alpha, maps=not npy)
        if npy:  # only the overlays changed
            files = [f for pair in zip(npy, files) for f in pair]
        return files, files[0::2]

    # Gradio finds its progress tracker by this default argument, so the call in the default is required
    def on_run(state, model, methods, classes, scales_text, rule, alpha,
               progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        if not state:
            yield keep, keep, keep, status_html("Upload an image or pick a sample first.", error=True), state
            return
        # every input is checked before anything is cleared: a bad value keeps the previous maps
        try:
            img = check_upload(state["path"], max_bytes, max_pixels)
            methods = fastest_first(list(methods or []))
            ids = [int(c) for c in classes or []]
            if not methods:
                raise InputError("choose at least one method")
            if not ids:
                raise InputError("choose at least one class")
            scales = parse_scale_text(scales_text) if "cameras" in methods else None
        except (CamerasError, RuntimeError) as e:
            kept = " (the maps below are from the previous run)" if state.get("explanations") else ""
            yield keep, keep, keep, status_html(f"{e}{kept}", error=True), state
            return
        done: list[Explanation] = []
        total = len(methods) * len(ids)
        error = False
        progress((0, total), desc="starting")
        # one row per method (fastest first), one column per class
        yield (gr.update(value=[], columns=len(ids)), "", None,
               status_html(f"Explaining: 0 of {total} maps…"), dict(state, explanations=[], npy=[]))
        try:
            for e in explorer.explain(img, model, methods, ids, scales, rule):
                done.append(e)
                progress((len(done), total), desc=f"{e.label} done")
                yield (render(img, done, alpha), details_markdown(done), None,  # no downloads of the last run's
                       status_html(f"Explaining: {len(done)} of {total} maps…"), dict(state, explanations=done, npy=[]))
            message = f"Done: {len(done)} map{'s' if len(done) != 1 else ''} in {sum(e.seconds for e in done):.1f} s."
        except Cancelled:
            message = f"Cancelled after {len(done)} of {total} maps."
        except Exception as e:  # noqa: BLE001 - e.g. out of memory, or whatever a model raises: say so, keep what is done
            # the page may be public: no server paths in the message; foreign errors are named by their type
            text = str(e).replace(str(work), "…").replace(str(state["path"]), Path(state["path"]).name)
            message = text if isinstance(e, (CamerasError, RuntimeError)) else f"{type(e).__name__}: {text}"
            error = True
        explorer.stop.clear()  # a Cancel pressed during this run is spent; one pressed later waits for the next
        state = dict(state, explanations=done, npy=[])
        files, state["npy"] = downloads_for(state, img, done, alpha)
        yield render(img, done, alpha), details_markdown(done), files, status_html(message, error=error), state

    def on_alpha(state, alpha):
        """Redraw the overlays (and their .png downloads) at another opacity; maps are not recomputed."""
        if not state or not state.get("explanations"):
            return keep, keep
        img = check_upload(state["path"], max_bytes, max_pixels)
        done = state["explanations"]
        return render(img, done, alpha), downloads_for(state, img, done, alpha)[0]

    with gr.Blocks(title="cameras: saliency maps") as demo:
        gr.Markdown("## cameras — high-resolution saliency maps\nUpload an image (or pick a sample), choose "
                    "methods and classes, and compare the maps. Everything runs on this machine.")
        gr.HTML(f"<style>{PAGE_CSS}</style>", elem_id="page-style", padding=False)
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label=f"Image (≤ {_size(max_bytes)}, ≤ {max_pixels / 1e6:g} MP)",
                                 type="filepath", elem_id="upload")
                sample = gr.Dropdown(list(sample_files), value=None, label="…or pick a sample photo",
                                     elem_id="sample")
                preview = gr.Image(label="Image", interactive=False, elem_id="preview", height=220,
                                   buttons=[])
            with gr.Column(scale=1):
                model = gr.Dropdown(list(models), value=models[0], label="Model", elem_id="model")
                methods = gr.CheckboxGroup(fastest_first(available_methods()), value=["cameras"],
                                           label="Methods (run fastest first)", elem_id="methods")
                classes = gr.Dropdown([], multiselect=True, label="Classes (top 5 first; type to filter by name)",
                                      elem_id="classes", filterable=True)
                find = gr.Textbox(label="Find a class (Enter adds the best match; near misses too)",
                                  placeholder="e.g. espresso", elem_id="class-search")
                with gr.Row():
                    scales = gr.Textbox(DEFAULT_SCALES, label="CAMERAS scales (sizes ζ₀ < ζ₁ < …)", elem_id="scales",
                                        scale=3)
                    rule = gr.Dropdown(list(SCALE_RULES), value=DEFAULT_SCALE_RULE, elem_id="scale-rule", scale=1,
                                       label="CAMERAS scale rule (top-1)")
                with gr.Row():
                    run_btn = gr.Button("Explain", variant="primary", elem_id="run")
                    cancel_btn = gr.Button("Cancel", elem_id="cancel")
        status = gr.HTML(status_html("Upload an image or pick a sample."), elem_id="status")
        alpha = gr.Slider(0, 1, value=0.5, step=0.05, label="Overlay opacity (drag, or type and press Enter)",
                          elem_id="alpha")
        gallery = gr.Gallery(label="Overlays: one row per method, one column per class", columns=TOP_K,
                             format="png", object_fit="contain", allow_preview=True, elem_id="overlays")
        details = gr.Markdown("", elem_id="details")
        downloads = gr.File(label="Maps (.npy float32, .png overlay)", file_count="multiple", elem_id="downloads")

        # everything that runs the model shares one queue slot: one at a time, in order
        work_queue = {"concurrency_limit": 1, "concurrency_id": "model"}
        shown = [preview, classes, status, state, gallery, details, downloads]
        upload.change(on_upload, [upload, model], shown, show_progress_on=[preview], **work_queue)
        model.change(on_upload, [upload, model], shown, show_progress_on=[preview], **work_queue)
        sample.input(on_sample, [sample], [upload], show_progress="hidden")
        find.submit(on_find, [state, model, find, classes], [classes, status], show_progress="hidden", **work_queue)
        # the click itself clears the Cancel flag, at once: a Cancel pressed after it reaches this run even while
        # the run still waits in the queue (behind an upload, say); the run clears it again when it ends
        run_btn.click(explorer.stop.clear, None, None, show_progress="hidden", concurrency_limit=None,
                      concurrency_id="cancel") \
            .then(on_run, [state, model, methods, classes, scales, rule, alpha],
                  [gallery, details, downloads, status, state], show_progress_on=[gallery], **work_queue)
        cancel_btn.click(explorer.stop.set, None, None, concurrency_limit=None, concurrency_id="cancel")
        alpha.change(on_alpha, [state, alpha], [gallery, downloads], show_progress="hidden",
                     trigger_mode="always_last", **work_queue)
    demo.queue(default_concurrency_limit=1)
    demo.cameras_work_dir = work
    if not work_dir:  # a folder of our own making goes with the app (or at exit)
        weakref.finalize(demo, shutil.rmtree, str(work), ignore_errors=True)
    return demo


def serve(models: list[str], host: str = "127.0.0.1", port: int = 7860, device: str = "cpu",
          max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS, block: bool = True,
          weights: dict[str, str] | None = None):
    """Build and launch the app on ``host:port`` (loopback unless told otherwise).

    ``weights`` maps a model name to its weights file. Uploads over 4× ``max_bytes`` are
    refused by Gradio itself (with its own notice) before they reach the app's checks.
    """
    demo = build_app(models, device, max_bytes, max_pixels, weights=weights)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=True, ssr_mode=False,
                max_file_size=4 * max_bytes, allowed_paths=[str(demo.cameras_work_dir)], footer_links=[])
    return demo
