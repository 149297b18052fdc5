"""The method: a plan made once, the operators (crop, warp, deep seams; Eq. 1-3), Eq. 4
reconstruction, section 3.3 refinement, full resolution, annotation mapping, and the one
batched sequence that runs them (:mod:`dnr_jax.resizing.run`).

This package's namespace is its public API; the modules below it are its rooms.
"""

from dnr_jax.resizing.audition import chosen_plan
from dnr_jax.resizing.fullres import full_resolution
from dnr_jax.resizing.fullres import full_resolution_tiled
from dnr_jax.resizing.masks import KeepInfeasible
from dnr_jax.resizing.masks import check_keep
from dnr_jax.resizing.masks import keep_limits
from dnr_jax.resizing.masks import removal_size
from dnr_jax.resizing.masks import working_mask
from dnr_jax.resizing.phases import Prepared
from dnr_jax.resizing.phases import apply_refinement_batch
from dnr_jax.resizing.phases import downscale
from dnr_jax.resizing.phases import final_image
from dnr_jax.resizing.phases import final_image_batch
from dnr_jax.resizing.phases import order_scores_batch
from dnr_jax.resizing.phases import prepare
from dnr_jax.resizing.phases import prepare_batch
from dnr_jax.resizing.phases import reconstruction_chunk
from dnr_jax.resizing.phases import reconstruction_chunk_batch
from dnr_jax.resizing.phases import reconstruction_init
from dnr_jax.resizing.phases import refinement_chunk_batch
from dnr_jax.resizing.phases import refinement_init_batch
from dnr_jax.resizing.plan import MAX_ENLARGE
from dnr_jax.resizing.plan import MIN_SIDE
from dnr_jax.resizing.plan import Plan
from dnr_jax.resizing.plan import Sizes
from dnr_jax.resizing.plan import carves_seams
from dnr_jax.resizing.plan import crop_shares
from dnr_jax.resizing.plan import is_resampling
from dnr_jax.resizing.plan import make_plan
from dnr_jax.resizing.plan import operator_name
from dnr_jax.resizing.plan import reconstruction_steps
from dnr_jax.resizing.plan import sizes
from dnr_jax.resizing.plan import validate
from dnr_jax.resizing.plan import work_size
from dnr_jax.resizing.result import Result
from dnr_jax.resizing.result import make_result
from dnr_jax.resizing.result import to_uint8
from dnr_jax.resizing.run import NumericalError
from dnr_jax.resizing.run import ProgressFn
from dnr_jax.resizing.run import choose_order
from dnr_jax.resizing.run import retarget
from dnr_jax.resizing.run import retarget_group
from dnr_jax.resizing.run import retarget_pure
from dnr_jax.resizing.run import retarget_stage
