"""``python -m dnr_jax.web``."""
from dnr_jax.web.main import run_main

run_main()
