#!/usr/bin/env bash
# Regenerate the README's attack and sanity figures with the embedded model (2-core CPU: a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/cameras samples --out demo-out/samples >/dev/null
.venv/bin/cameras attack demo-out/samples/chelsea.jpg --square --out docs/images/adversarial
.venv/bin/cameras sanity demo-out/samples/chelsea.jpg --methods cameras,gradcam,gradient --square --out docs/images/adversarial
.venv/bin/cameras attack demo-out/samples/chelsea.jpg --square --preset literal --out docs/images/adversarial-literal
.venv/bin/cameras sanity demo-out/samples/chelsea.jpg demo-out/samples/coffee.jpg --methods cameras,gradcam,gradient --steps 10 --preset paper --out docs/images/adversarial-paper-sanity
