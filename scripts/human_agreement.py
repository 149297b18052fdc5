"""How often each quality measure picks the retargeted image people chose.

Reads the human paired votes of the RetargetMe survey re-run (``sessions/*.dat`` of the
public copy ``FlyingGoblin/Servey_Extend_RetargetMe``; ``dnr_jax.quality.votes``) and
scores every published method's result of every voted set with the project's measures:
the semantic score (Eq. 5) at each VGG layer, bidirectional similarity's coherence and
completeness, and their sum (BDS). Prints, per measure, the share of votes it agrees
with (95% interval: bootstrap over the voted pairs), per task, beside the ceiling (each
pair's majority) and a fitted baseline that knows only the method's name (its win rate
on the other sets, leave one set out).

Votes on sets below 47 only (``--part fit``); ``--part report`` (sets 49 and 50) is for
the final table and must be asked for with ``--i_am_reporting``. Images are scaled so
that their long side is ``--max_side`` pixels (the evaluation's 640). The per-image
measures are written to ``--out``/measures.json for the criterion work.

The images are extracted from a fetched git mirror (never commit them):

    python scripts/human_agreement.py --mirror /work/.mirror/FlyingGoblin+Servey_Extend_RetargetMe/repo \\
        --retargetme /tmp/retargetme --out results/human_agreement
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _retargetme  # noqa: E402

from dnr_jax.cli import visualize  # noqa: E402
from dnr_jax.nn import vgg  # noqa: E402
from dnr_jax.nn import weights as weights_lib  # noqa: E402
from dnr_jax.quality import human  # noqa: E402
from dnr_jax.quality import metrics  # noqa: E402
from dnr_jax.quality import votes as votes_lib  # noqa: E402

SS_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4", "block5_conv1",
             "block5_pool")


def extract(mirror: pathlib.Path, dest: pathlib.Path, set_ids) -> pathlib.Path:
  """The voted sets' images and the session files, out of a fetched git mirror (bare)."""
  sessions = dest / "sessions"
  sessions.mkdir(parents=True, exist_ok=True)
  git = lambda *a: subprocess.run(["git", "--git-dir", str(mirror), *a], check=True,  # noqa: E731
                                  capture_output=True).stdout
  for name in git("ls-tree", "-r", "--name-only", "HEAD", "sessions").decode().split():
    target = sessions / pathlib.Path(name).name
    if not target.exists():
      target.write_bytes(git("show", f"HEAD:{name}"))
  for s in set_ids:
    d = dest / str(s)
    d.mkdir(exist_ok=True)
    for f in ["src_lrg.jpg"] + [f"{k}_lrg.jpg" for k in range(1, 9)]:
      if not (d / f).exists():
        try:
          (d / f).write_bytes(git("show", f"HEAD:data/{s}/{f}"))
        except subprocess.CalledProcessError:
          pass
  return sessions


def scaled(img: np.ndarray, f: float) -> np.ndarray:
  """``img`` scaled by ``f`` (at most 1): every image of a set by its source's factor, so
  that the outputs keep their size relative to the source."""
  if f >= 1.0:
    return img
  return visualize.resize_linear(img, (max(1, round(img.shape[0] * f)),
                                       max(1, round(img.shape[1] * f))))


_energies = jax.jit(lambda w, x: {k: jnp.sum(jnp.square(v)) for k, v in
                                  vgg.features(w, x[None], SS_LAYERS).items()})


def measures(w, src: np.ndarray, out: np.ndarray, src_energy: dict) -> dict[str, float]:
  """Every measure of one (source, output) pair, "higher = people prefer" after the sign
  (coherence, completeness and BDS are distances: negated)."""
  e = _energies(w, jnp.asarray(out, jnp.float32))
  m = {f"ss_{k}": float(e[k] / src_energy[k]) for k in SS_LAYERS}
  b = metrics.bidirectional_similarity(out, src)
  m["neg_coherence"] = -float(b["coherence"])
  m["neg_completeness"] = -float(b["completeness"])
  m["neg_bds"] = m["neg_coherence"] + m["neg_completeness"]
  m |= {f"neg_{k}": -v for k, v in human.features(src, out, w).items()}
  return m


def method_prior(train) -> dict:
  """The baseline that knows only the method: its win rate on the training votes."""
  rates = votes_lib.win_rates(train)
  return {(s, m): r for m, r in rates.items() for s in range(1, 93)}


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--retargetme", required=True, help="folder of numbered sets (and sessions/)")
  ap.add_argument("--mirror", default=None, help="extract the voted sets from this git mirror first")
  ap.add_argument("--sessions", default=None, help="session files (default: RETARGETME/sessions)")
  ap.add_argument("--part", default="fit", choices=("fit", "report"))
  ap.add_argument("--i_am_reporting", action="store_true",
                  help="needed with --part report: the report sets are scored once, for the table")
  ap.add_argument("--max_side", type=int, default=640)
  ap.add_argument("--out", default="results/human_agreement")
  ap.add_argument("--reuse", action="store_true",
                  help="read the measures of an earlier run from --out instead of computing them")
  args = ap.parse_args()
  if args.part == "report" and not args.i_am_reporting:
    sys.exit("human_agreement: --part report is for the final table; add --i_am_reporting")
  root = pathlib.Path(args.retargetme)
  if args.mirror:
    extract(pathlib.Path(args.mirror), root, range(1, 93))
  all_votes = votes_lib.read_sessions(args.sessions or root / "sessions")
  vs = votes_lib.split_votes(all_votes, args.part)
  ids = sorted({v.set_id for v in vs})
  w = weights_lib.load_vgg19()
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  table, tasks = {}, {}
  t0 = time.time()
  cache = out / f"measures_{args.part}.json"
  if args.reuse:
    saved = json.loads(cache.read_text())
    tasks = {int(k): t for k, t in saved.pop("tasks").items()}
    table = {(int(k.split("/")[0]), k.split("/")[1]): v for k, v in saved.items()}
  for set_id, task, src, published in (() if args.reuse else
                                       _retargetme.sets(root, "all", ids=tuple(ids))):
    f = min(1.0, args.max_side / max(src.shape[:2]))
    src_s = scaled(src, f)
    src_energy = _energies(w, jnp.asarray(src_s, jnp.float32))
    tasks[set_id] = task
    for method, img in published.items():
      table[(set_id, method)] = measures(w, src_s, scaled(img, f), src_energy)
    print(f"set {set_id} {task}: {len(published)} methods, {time.time() - t0:.0f} s",
          flush=True)
  if not args.reuse:
    cache.write_text(json.dumps({f"{s}/{m}": v for (s, m), v in table.items()}
                                | {"tasks": tasks}, indent=1))

  names = list(next(iter(table.values())))
  by_task = collections.defaultdict(list)
  for v in vs:
    by_task[tasks.get(v.set_id, "?")].append(v)
  task_names = sorted(by_task)
  head = "| measure | all votes | " + " | ".join(
      f"{t} ({len(by_task[t])} votes, {len({v.set_id for v in by_task[t]})} sets)"
      for t in task_names) + " |"
  lines = [head, "|" + "---|" * (2 + len(task_names))]

  def row(name, agree_fn):
    a = agree_fn(vs)
    cells = [f"{a.rate:.3f} [{a.low:.3f}, {a.high:.3f}]"]
    cells += [f"{agree_fn(by_task[t]).rate:.3f}" for t in task_names]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")

  for name in names:
    scores = {k: m[name] for k, m in table.items()}
    row(name, lambda x, scores=scores: votes_lib.agreement(x, scores))
  # fitted on every other set (all tasks), judged per set; per task the sets' rates
  # weighted by their votes
  prior, prior_sets = votes_lib.leave_one_set_out(vs, method_prior)
  n_votes = collections.Counter(v.set_id for v in vs)
  per_task = [sum(prior_sets[s] * n_votes[s] for s in {v.set_id for v in by_task[t]})
              / len(by_task[t]) for t in task_names]
  lines.append("| method prior (leave one set out) | "
               f"{prior.rate:.3f} [{prior.low:.3f}, {prior.high:.3f}] | "
               + " | ".join(f"{r:.3f}" for r in per_task) + " |")
  def criterion(train):
    weights = human.fit_weights(train, feats)
    return {k: human.score(f, weights) for k, f in feats.items()}

  feats = {k: {n: -m[f"neg_{n}"] for n in human.FEATURES} for k, m in table.items()}
  loso, loso_sets = votes_lib.leave_one_set_out(vs, criterion)
  per_task = [sum(loso_sets[s] * n_votes[s] for s in {v.set_id for v in by_task[t]})
              / len(by_task[t]) for t in task_names]
  lines.append("| human criterion (quality.human, leave one set out) | "
               f"{loso.rate:.3f} [{loso.low:.3f}, {loso.high:.3f}] | "
               + " | ".join(f"{r:.3f}" for r in per_task) + " |")
  if args.part == "fit":
    print("human.WEIGHTS fitted on every vote of this part:",
          json.dumps(human.fit_weights(vs, feats)))
  else:
    shipped = {k: human.score(f) for k, f in feats.items()}
    row("human criterion as shipped (human.WEIGHTS)",
        lambda x: votes_lib.agreement(x, shipped))
  ceiling = [f"{votes_lib.pair_ceiling(vs):.3f}"] + [
      f"{votes_lib.pair_ceiling(by_task[t]):.3f}" for t in task_names]
  lines.append("| ceiling (each pair's majority) | " + " | ".join(ceiling) + " |")
  lines.append("")
  lines.append(f"{len(vs)} votes on sets {', '.join(map(str, ids))} ({args.part} part); "
               f"win rates: " + ", ".join(f"{m} {r:.2f}" for m, r in sorted(
                   votes_lib.win_rates(vs).items(), key=lambda x: -x[1])))
  text = "\n".join(lines)
  (out / f"agreement_{args.part}.md").write_text(text + "\n")
  print(text)


if __name__ == "__main__":
  main()
