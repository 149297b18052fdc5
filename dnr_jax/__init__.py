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

from dnr_jax.config import OperatorConfig
from dnr_jax.config import ReconstructionConfig
from dnr_jax.config import RefinementConfig
from dnr_jax.config import RetargetConfig
from dnr_jax.image_io import ImageError
from dnr_jax.image_io import load_image
from dnr_jax.image_io import load_mask
from dnr_jax.image_io import save_image
from dnr_jax.pipeline import KeepInfeasible
from dnr_jax.pipeline import NumericalError
from dnr_jax.pipeline import Result
from dnr_jax.pipeline import retarget
from dnr_jax.pipeline import retarget_pure
from dnr_jax.weights import WeightsError
from dnr_jax.weights import load_vgg19

__version__ = "0.1.0"

__all__ = [
    "ImageError", "KeepInfeasible", "NumericalError", "OperatorConfig", "ReconstructionConfig",
    "RefinementConfig", "Result", "RetargetConfig", "WeightsError", "load_image",
    "load_mask", "load_vgg19", "retarget", "retarget_pure", "save_image",
]
