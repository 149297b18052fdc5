"""Quality measures: Eq. 5 and bidirectional similarity (``metrics``), the RetargetMe
survey's human votes (``votes``), and the human-calibrated criterion ``human_preference``
(``human``, on the column map recovered by ``correspondence``)."""

from dnr_jax.quality.human import human_preference  # noqa: F401  (the public criterion)
