"""PASCAL-VOC-style XML annotations (VOC 2007 and ImageNet's per-image box files)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .items import DatasetError


def parse_xml(path: Path) -> tuple[tuple[int, int], list[dict]]:
    """Read one annotation: ((H, W), [{"name", "box", "difficult"}, ...]).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.xml"
        >>> _ = p.write_text("<annotation><size><width>4</width><height>3</height></size><object><name>cat</name>"
        ...                  "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>3</ymax></bndbox>"
        ...                  "</object></annotation>")
        >>> parse_xml(p)
        ((3, 4), [{'name': 'cat', 'box': (0.0, 0.0, 2.0, 3.0), 'difficult': False}])
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise DatasetError(f"{path}: not a readable XML annotation ({e})") from None

    def num(node, field: str) -> float:
        el = node.find(field)
        if el is None or el.text is None:
            raise DatasetError(f"{path}: missing field '{field}'")
        try:
            return float(el.text)
        except ValueError:
            raise DatasetError(f"{path}: field '{field}' is not a number: {el.text!r}") from None

    size = root.find("size")
    if size is None:
        raise DatasetError(f"{path}: missing field 'size'")
    H, W = int(num(size, "height")), int(num(size, "width"))
    objs = []
    for obj in root.findall("object"):
        name = obj.findtext("name")
        if not name:
            raise DatasetError(f"{path}: an object has no 'name'")
        bb = obj.find("bndbox")
        if bb is None:
            raise DatasetError(f"{path}: object '{name}' has no 'bndbox'")
        # VOC boxes are 1-based and inclusive: pixels xmin..xmax → [xmin-1, xmax)
        box = (num(bb, "xmin") - 1, num(bb, "ymin") - 1, num(bb, "xmax"), num(bb, "ymax"))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise DatasetError(f"{path}: object '{name}' has an empty box {box}")
        objs.append({"name": name.strip(), "box": box, "difficult": obj.findtext("difficult", "0").strip() == "1"})
    return (H, W), objs
