"""The layout shows the architecture: lower layers never import upper ones, rooms stay small."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "dnr_jax"
# Bottom to top (WORKSPACE.md, "Layers"); a module imports its own layer or lower ones.
LAYERS = ["config", "io", "nn", "ops", "quality", "resizing", "video", "cli", "web"]


def _layer(module: str) -> str | None:
  parts = module.split(".")
  if parts[0] != "dnr_jax" or len(parts) < 2:
    return None
  return parts[1] if parts[1] in LAYERS else None


def _imports(path: pathlib.Path):
  tree = ast.parse(path.read_text())
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module:
      if node.module == "dnr_jax":
        yield from (f"dnr_jax.{a.name}" for a in node.names)
      else:
        yield node.module
    elif isinstance(node, ast.Import):
      yield from (a.name for a in node.names)


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.stem == "config")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_layer_above_its_own(path):
  own = "config" if path.stem == "config" and path.parent == PACKAGE else path.parent.name
  rank = LAYERS.index(own)
  for module in _imports(path):
    layer = _layer(module)
    assert layer is None or LAYERS.index(layer) <= rank, f"{path.name} imports {module}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_500_lines(path):
  assert len(path.read_text().splitlines()) <= 500
