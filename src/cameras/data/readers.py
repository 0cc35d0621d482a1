"""Dataset readers: ImageNet val, PASCAL VOC 2007, COCO instances. All return list[Item]."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .items import DatasetError, Item, Obj
from .voc_xml import parse_xml

VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]


def load_mapping(path: str | Path | None, names: list[str] | None = None) -> dict[str, int] | None:
    """Read a class-mapping JSON file {dataset class name or id: model class id}.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.json"; _ = p.write_text('{"cat": 285}')
        >>> load_mapping(p)
        {'cat': 285}
    """
    if path is None:
        return None
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{p}: mapping file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(raw, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw.values()):
        raise DatasetError(f"{p}: must map dataset class names to integer model class ids, e.g. {{\"cat\": 285}}")
    if names is not None:
        unknown = sorted(set(raw) - set(names))
        if unknown:
            raise DatasetError(f"{p}: unknown dataset classes {unknown}; expected names among {names}")
    return {str(k): int(v) for k, v in raw.items()}


def _image_for(folder: Path, stem: str) -> Path:
    for suf in (".JPEG", ".jpg", ".jpeg", ".png", ".JPG", ".PNG"):
        p = folder / f"{stem}{suf}"
        if p.is_file():
            return p
    raise DatasetError(f"no image file for '{stem}' in {folder}")


def read_imagenet(root: str | Path, wnids: list[str]) -> list[Item]:
    """ImageNet val with boxes: ``root`` holds the images and either per-image VOC-style XML
    files (``<stem>.xml`` beside the images or under ``root/annotations``; object names
    are WordNet ids) or ``LOC_val_solution.csv`` (``ImageId,PredictionString`` with
    ``wnid x0 y0 x1 y1 ...``). ``wnids`` maps WordNet ids to the model's class ids.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: " + ("is a file; give the dataset's folder" if root.exists()
                                          else "dataset folder not found"))
    index = {w: i for i, w in enumerate(wnids)}
    items: list[Item] = []
    csv_path = root / "LOC_val_solution.csv"
    if csv_path.is_file():
        from PIL import Image

        with open(csv_path, newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"ImageId", "PredictionString"} <= set(reader.fieldnames):
                raise DatasetError(f"{csv_path}: header must be ImageId,PredictionString")
            for line, row in enumerate(reader, start=2):
                parts = row["PredictionString"].split()
                if len(parts) % 5:
                    raise DatasetError(f"{csv_path}:{line}: PredictionString must hold groups of 'wnid x0 y0 x1 y1'")
                img = _image_for(root, row["ImageId"])
                try:
                    with Image.open(img) as im:
                        W, H = im.size
                except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for a file that is not an image
                    raise DatasetError(f"{img}: not a readable image ({e}); replace it, or remove its line "
                                       f"{line} from {csv_path.name}") from None
                objs = []
                for j in range(0, len(parts), 5):
                    w = parts[j]
                    if w not in index:
                        raise DatasetError(f"{csv_path}:{line}: unknown WordNet id '{w}' for this model")
                    try:
                        x0, y0, x1, y1 = (float(v) for v in parts[j + 1 : j + 5])
                    except ValueError:
                        raise DatasetError(f"{csv_path}:{line}: box coordinates must be numbers") from None
                    objs.append(Obj(index[w], (x0, y0, x1 + 1, y1 + 1)))
                items.append(Item(img, (H, W), objs))
        return sorted(items, key=lambda it: it.image.name)
    ann_dir = root / "annotations" if (root / "annotations").is_dir() else root
    xmls = sorted(ann_dir.glob("*.xml"))
    if not xmls:
        raise DatasetError(f"{root}: no LOC_val_solution.csv and no .xml annotations found")
    for x in xmls:
        size, objs = parse_xml(x)
        out = []
        for o in objs:
            if o["name"] not in index:
                raise DatasetError(f"{x}: object name '{o['name']}' is not a WordNet id of this model")
            out.append(Obj(index[o["name"]], o["box"], difficult=o["difficult"]))
        items.append(Item(_image_for(root, x.stem), size, out))
    return items


def _check_mapping(mapping: dict[str, int] | None, num_classes: int | None, dataset: str, n_dataset: int) -> None:
    """Refuse dataset classes that would be scored as some other class of the model.

    Without a mapping the dataset's own class order is used, which is right only for a
    model with as many classes (one trained on that dataset); a mapping's ids must be
    classes of the model. ``num_classes`` None: the model is not known, nothing is checked.
    """
    if num_classes is None:
        return
    if mapping is None:
        if n_dataset != num_classes:
            raise DatasetError(f"{dataset} has {n_dataset} classes but the model has {num_classes}: without a mapping "
                               f"each {dataset} class would be scored as the model's class of the same index; pass "
                               "--mapping FILE.json mapping the dataset's class names to the model's class ids "
                               "(e.g. {\"cat\": 285, \"dog\": 207} for an ImageNet model)")
        return
    bad = {k: v for k, v in mapping.items() if not 0 <= v < num_classes}
    if bad:
        raise DatasetError(f"the mapping gives class ids the model does not have ({bad}); the model's classes are "
                           f"0..{num_classes - 1}")


def read_voc(root: str | Path, mapping: dict[str, int] | None, split: str = "test",
             num_classes: int | None = None) -> list[Item]:
    """PASCAL VOC 2007: ``root/JPEGImages``, ``root/Annotations``, ``root/ImageSets/Main/<split>.txt``.

    ``mapping`` maps the 20 VOC class names to the model's class ids (required unless the
    model is a 20-class VOC model, when the VOC order is used). With the model's
    ``num_classes``, a missing mapping for a model of another class count, or a mapping to
    ids the model lacks, is refused before anything is read.
    """
    root = Path(root)
    ids_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not ids_file.is_file():  # the layout first: a folder of another kind is not asked for a mapping
        raise DatasetError(f"{ids_file}: split file not found "
                           "(expected VOC layout: JPEGImages, Annotations, ImageSets/Main)")
    _check_mapping(mapping, num_classes, "PASCAL VOC", len(VOC_CLASSES))
    lookup = mapping if mapping is not None else {c: i for i, c in enumerate(VOC_CLASSES)}
    items = []
    for line in ids_file.read_text().split():
        xml = root / "Annotations" / f"{line}.xml"
        if not xml.is_file():
            raise DatasetError(f"{xml}: annotation missing for image id '{line}'")
        size, objs = parse_xml(xml)
        out, unmapped = [], set()
        for o in objs:
            if o["name"] not in VOC_CLASSES:
                raise DatasetError(f"{xml}: unknown VOC class '{o['name']}'")
            if o["name"] in lookup:
                out.append(Obj(lookup[o["name"]], o["box"], difficult=o["difficult"]))
            else:
                unmapped.add(o["name"])
        items.append(Item(_image_for(root / "JPEGImages", line), size, out, len(unmapped)))
    return items


def read_coco(root: str | Path, mapping: dict[str, int] | None, annotations: str | Path | None = None,
              num_classes: int | None = None) -> list[Item]:
    """COCO instances: ``annotations`` (default: the single ``*.json`` in ``root`` or
    ``root/annotations``) and images in ``root`` (or ``root/images``). Masks come from
    polygons and RLE via pycocotools; crowd annotations count as the others do (TorchRay's
    protocol: in the image's classes and its class's region). ``mapping`` maps category
    names (or ids as text) to the model's class ids, and each of its keys must name a
    category of the file; without it categories are numbered in ascending id order (the
    order of the official files and of TorchRay's models), which the model's
    ``num_classes`` (when given) must then equal. An image's name is its ``file_name``
    (subfolders included).
    """
    from pycocotools import mask as mask_utils

    root = Path(root)
    if annotations is None:
        cands = sorted(root.glob("*.json")) + sorted((root / "annotations").glob("*.json"))
        if len(cands) != 1:
            raise DatasetError(f"{root}: expected exactly one COCO instances .json, found {len(cands)}; pass its path")
        annotations = cands[0]
    ann_path = Path(annotations)
    try:
        data = json.loads(ann_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{ann_path}: not a readable JSON file ({e})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{ann_path}: missing list field '{key}'")
    _check_mapping(mapping, num_classes, f"{ann_path.name} (COCO)", len(data["categories"]))
    for pos, c in enumerate(data["categories"]):
        if "id" not in c or "name" not in c:
            raise DatasetError(f"{ann_path}: categories[{pos}] needs 'id' and 'name'")
    ordered = sorted(data["categories"], key=lambda c: c["id"])
    if mapping is None:
        cats = {c["id"]: pos for pos, c in enumerate(ordered)}
    else:
        known = {c["name"] for c in ordered} | {str(c["id"]) for c in ordered}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise DatasetError(f"the mapping names categories {ann_path.name} does not have ({unknown}); use the "
                               f"category names (or ids) of the file, e.g. {ordered[0]['name']!r}" if ordered else
                               f"{ann_path.name} has no categories")
        cats = {c["id"]: mapping.get(c["name"], mapping.get(str(c["id"]))) for c in ordered
                if c["name"] in mapping or str(c["id"]) in mapping}
    img_dir = root / "images" if (root / "images").is_dir() else root
    images = {}
    for pos, im in enumerate(data["images"]):
        for key in ("id", "file_name", "height", "width"):
            if key not in im:
                raise DatasetError(f"{ann_path}: images[{pos}] has no field '{key}'")
        images[im["id"]] = Item(img_dir / im["file_name"], (int(im["height"]), int(im["width"])), [],
                                key=Path(im["file_name"]).as_posix())
    unmapped: dict[int, set] = {}
    for pos, a in enumerate(data["annotations"]):
        for key in ("image_id", "category_id", "segmentation"):
            if key not in a:
                raise DatasetError(f"{ann_path}: annotations[{pos}] has no field '{key}'")
        item = images.get(a["image_id"])
        if item is None:
            raise DatasetError(f"{ann_path}: annotations[{pos}] refers to unknown image_id {a['image_id']}")
        if a["category_id"] not in cats:  # not scored, but another class for the difficult subset
            unmapped.setdefault(a["image_id"], set()).add(a["category_id"])
            continue
        H, W = item.size
        seg = a["segmentation"]
        try:
            if isinstance(seg, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, H, W))
            elif isinstance(seg.get("counts"), list):
                rle = mask_utils.frPyObjects(seg, H, W)
            else:
                rle = seg
            m = mask_utils.decode(rle).astype(bool)
        except Exception as e:
            raise DatasetError(f"{ann_path}: annotations[{pos}].segmentation is not a polygon or RLE ({e})") from None
        item.objects.append(Obj(cats[a["category_id"]], mask=np.ascontiguousarray(m)))
    for image_id, it in images.items():
        it.unmapped = len(unmapped.get(image_id, ()))
    return [it for it in images.values() if it.objects]


PROTOCOL = 2  # how annotations are read (2: stored pixels, COCO crowds kept, classes left out by a mapping counted)


def dataset_identity(root, fmt: str, mapping=None) -> dict:
    """What a resumable run records of its dataset: the folder, format, mapping (path and a hash of its
    classes, key order and layout aside: an edited mapping is another one) and the readers' ``PROTOCOL``,
    so that a rerun on other data, or under other reading rules, is refused rather than mixed with
    finished records.

    Example:
        >>> sorted(dataset_identity("/data/voc", "voc"))
        ['data', 'format', 'mapping', 'mapping_sha256', 'protocol']
    """
    import hashlib

    digest = None if mapping is None else hashlib.sha256(
        json.dumps(load_mapping(mapping), sort_keys=True).encode()).hexdigest()
    return {"data": str(Path(root).resolve()), "format": fmt,
            "mapping": None if mapping is None else str(Path(mapping).resolve()), "mapping_sha256": digest,
            "protocol": PROTOCOL}


def check_files(items: list[Item], where: str | Path | None = None) -> None:
    """Refuse items whose image file is missing, naming the first (and ``where`` the images belong), before any work.

    Example:
        >>> check_files([])
    """
    missing = [it.image for it in items if not it.image.is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} of {len(items)} annotated images are missing (first: {missing[0]})"
                           + ("" if where is None else f"; the dataset's images belong under {where}"))


def read_dataset(fmt: str, root, wnids=None, mapping=None, num_classes: int | None = None) -> list[Item]:
    """Dispatch on ``fmt`` in {"imagenet", "voc", "coco"}; ``num_classes`` (the model's) checks the class mapping."""
    if fmt == "imagenet":
        if mapping is not None:
            raise DatasetError("--mapping applies to VOC and COCO; ImageNet's classes are the model's own (its wnids): "
                               "leave --mapping out")
        return read_imagenet(root, wnids or [])
    if fmt == "voc":
        return read_voc(root, mapping, num_classes=num_classes)
    if fmt == "coco":
        return read_coco(root, mapping, num_classes=num_classes)
    raise DatasetError(f"unknown dataset format '{fmt}': use imagenet, voc or coco")


__all__ = ["PROTOCOL", "VOC_CLASSES", "check_files", "dataset_identity", "load_mapping", "read_coco", "read_dataset",
           "read_imagenet", "read_voc"]
