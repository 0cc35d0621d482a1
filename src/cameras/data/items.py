"""The one item type every dataset reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import CamerasError


class DatasetError(CamerasError, ValueError):
    """A dataset file is missing or malformed; the message names the file and the field."""


@dataclass
class Obj:
    """One annotated object: a model class id with a box (x0, y0, x1, y1, pixels, inclusive
    of x0/y0, exclusive of x1/y1) or a boolean H×W mask, and a difficult flag."""

    class_id: int
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = None
    difficult: bool = False

    def region(self, height: int, width: int) -> np.ndarray:
        """H×W bool array of the pixels the object covers."""
        if self.mask is not None:
            return self.mask.astype(bool)
        out = np.zeros((height, width), dtype=bool)
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            out[max(0, int(y0)) : max(0, int(np.ceil(y1))), max(0, int(x0)) : max(0, int(np.ceil(x1)))] = True
        return out


@dataclass
class Item:
    """One image with its objects. ``size`` is (H, W) of the image as stored (annotations are
    in stored pixels: no EXIF rotation). ``unmapped`` counts the dataset classes present that
    the class mapping leaves out: they are not scored but count as another class for the
    "difficult" subset. ``key`` names the image uniquely within its dataset (default: the
    file name; a path relative to the image folder where files sit in subfolders)."""

    image: Path
    size: tuple[int, int]
    objects: list[Obj] = field(default_factory=list)
    unmapped: int = 0
    key: str | None = None

    @property
    def name(self) -> str:
        return self.key or self.image.name

    def class_count(self) -> int:
        """Distinct dataset classes present, scored or not (see ``unmapped``)."""
        return len(self.classes()) + self.unmapped

    def classes(self) -> list[int]:
        """Distinct class ids present, in first-appearance order."""
        seen: list[int] = []
        for o in self.objects:
            if o.class_id not in seen:
                seen.append(o.class_id)
        return seen

    def region(self, class_id: int) -> np.ndarray:
        """Union of the class's boxes or masks as an H×W bool array."""
        H, W = self.size
        out = np.zeros((H, W), dtype=bool)
        for o in self.objects:
            if o.class_id == class_id:
                out |= o.region(H, W)
        return out

    def all_difficult(self, class_id: int) -> bool:
        """True when every object of the class is flagged difficult (VOC)."""
        objs = [o for o in self.objects if o.class_id == class_id]
        return bool(objs) and all(o.difficult for o in objs)
