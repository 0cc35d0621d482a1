"""Dataset readers with one item type (image, size, objects with class, box or mask, difficult)."""

from .items import DatasetError, Item, Obj
from .readers import VOC_CLASSES, load_mapping, read_coco, read_dataset, read_imagenet, read_voc

__all__ = ["VOC_CLASSES", "DatasetError", "Item", "Obj", "load_mapping", "read_coco", "read_dataset", "read_imagenet",
           "read_voc"]
