"""Names shared across the package that must not load torch (the command line reads them at start-up)."""

DEFAULT_MODEL = "efficientnet_lite0"  # the embedded ImageNet EfficientNet-Lite0, offline
