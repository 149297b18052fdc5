"""The local web app (``python -m dnr_jax.web``): :mod:`engine` (what the page asks for,
without the page), :mod:`page` (the Gradio Blocks), :mod:`main` (flags and the server)."""
