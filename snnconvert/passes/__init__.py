"""Graph -> Graph rewrites, each checking its preconditions and naming the node when it cannot apply.

A pass is registered with a parameter schema, so a recipe (plain YAML) can name it and be validated
before anything runs.
"""

from snnconvert.passes.registry import PASSES, Param, PassContext, PassDef, register_pass, run_pass

# the passes register themselves on import
from snnconvert.passes import fold, normalize, softmax, spikify  # noqa: F401  isort: skip
from snnconvert.passes import spike_attention  # noqa: F401  isort: skip
from snnconvert.passes import qcfs  # noqa: F401  isort: skip

__all__ = ["PASSES", "Param", "PassContext", "PassDef", "register_pass", "run_pass"]
