"""Names shared across the package that must not load torch (the command line reads them at start-up)."""

DEFAULT_MODEL = "efficientnet_lite0"  # the embedded ImageNet EfficientNet-Lite0, offline
# CAMERAS's scale rule for a map of the image's own top-1: "all" keeps every scale (chosen by
# measurement: on 42 composites with exact object boxes it put more of the map in the box than
# the paper's rule, which kept 1.7 of 8 scales on average); the paper's own rule is "paper"
DEFAULT_SCALE_RULE = "all"
