"""The `cameras` command. Every subcommand is a thin shell over a library function:

======================  =====================================================  ====================
command                 library function                                       module here
======================  =====================================================  ====================
explain                 :func:`cameras.explain.explain_images`                 ``cli/explain.py``
compare                 :func:`cameras.compare.compare`                        ``cli/explain.py``
evaluate                :func:`cameras.evaluate.evaluate_dataset`              ``cli/evaluate.py``
experiment n-sensitivity  :func:`cameras.experiments.n_sensitivity`            ``cli/evaluate.py``
experiment interpolation  :func:`cameras.experiments.interpolation`            ``cli/evaluate.py``
attack                  :func:`cameras.commands.attack.attack_images`          ``cli/adversarial.py``
sanity                  :func:`cameras.commands.attack.sanity_images`          ``cli/adversarial.py``
randomize               :func:`cameras.randomization.randomize_image`          ``cli/adversarial.py``
reproduce               :func:`cameras.reproduce.reproduce`                    ``cli/reproduce.py``
bench                   :func:`cameras.bench.bench_cameras`                    ``cli/tools.py``
app                     :func:`cameras.app.serve`                              ``cli/tools.py``
samples                 writes scikit-image's sample photos                    ``cli/tools.py``
methods                 :func:`cameras.methods.available_methods`              ``cli/tools.py``
models                  how to name models                                     ``cli/tools.py``
======================  =====================================================  ====================
"""

from . import adversarial, evaluate, explain, reproduce, tools  # noqa: F401  (each registers its subcommands)
from .common import main

__all__ = ["main"]
