"""dnr_jax: Deep Network Resizing (Arar et al.) in JAX/Flax.

The library surface:
- :func:`retarget` (host call with progress, Ctrl-C, timings) and :func:`retarget_pure`
  (one pure, jittable, vmappable function);
- :class:`RetargetConfig` and its parts (frozen dataclasses);
- :func:`load_vgg19`, :func:`load_image`, :func:`load_mask`, :func:`save_image`;
- ``mapping``: points and label masks moved with the pixels (``Result.map_points``);
- the building blocks: ``vgg``, ``importance`` (Eq. 1), ``seams`` and ``receptive``
  (Eq. 2), ``column_maps`` (Eq. 3), ``deep_carving``, ``reconstruct`` (Eq. 4),
  ``grid_sampler`` and ``refine`` (section 3.3), ``metrics`` (Eq. 5), ``baselines``.
"""

import sys

from dnr_jax.config import OperatorConfig
from dnr_jax.config import ReconstructionConfig
from dnr_jax.config import RefinementConfig
from dnr_jax.config import RetargetConfig
from dnr_jax.io.image_io import ImageError
from dnr_jax.io.image_io import load_image
from dnr_jax.io.image_io import load_mask
from dnr_jax.io.image_io import save_image
from dnr_jax.nn.weights import WeightsError
from dnr_jax.nn.weights import load_vgg19
from dnr_jax.resizing import batching
from dnr_jax.resizing.masks import KeepInfeasible
from dnr_jax.resizing.run import NumericalError
from dnr_jax.resizing.result import Result
from dnr_jax.resizing.run import retarget
from dnr_jax.resizing.run import retarget_pure

# ``from dnr_jax import batching`` / ``import dnr_jax.batching``: the batch API's public
# name since milestone 1 (the module lives in the resizing layer now).
sys.modules["dnr_jax.batching"] = batching

__version__ = "0.1.0"

__all__ = [
    "ImageError", "KeepInfeasible", "NumericalError", "OperatorConfig", "ReconstructionConfig",
    "RefinementConfig", "Result", "RetargetConfig", "WeightsError", "load_image",
    "load_mask", "load_vgg19", "retarget", "retarget_pure", "save_image",
]
