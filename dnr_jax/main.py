"""``python -m dnr_jax.main``: the command line (:mod:`dnr_jax.cli.main`)."""

from dnr_jax.cli.main import run_main

if __name__ == "__main__":
  run_main()
