"""Video retargeting: shots, a smooth camera path and warp per shot, streamed frames.

The layer above :mod:`dnr_jax.resizing` (it uses the same Eq. 1 importance and Eq. 3
warp) and below :mod:`dnr_jax.cli`. :func:`dnr_jax.video.stream.retarget_clip` is the
library entry: an iterator of frames in, an iterator of frames out.
"""
