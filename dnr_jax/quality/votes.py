"""Human paired votes, and how often a measure agrees with them.

The RetargetMe survey (Rubinstein et al., SIGGRAPH Asia 2010) showed people two
retargeted versions of one photo and asked which they preferred. A re-run of it ships
with the public copy ``FlyingGoblin/Servey_Extend_RetargetMe`` under ``sessions/*.dat``:
one file per session, one vote per line ``trial|set|method_a|method_b|chosen|seconds``
(extra fields may follow; ``CHECKPOINT`` lines are attention checks, other short lines
session headers), methods numbered as in the release (:data:`METHODS`, 1-based).

A measure *agrees* with a vote when it scores the chosen method's image higher than the
other's (a tie counts half). :func:`agreement` gives the rate with a 95% interval from
a bootstrap over the voted pairs (votes on one pair are not independent: they share
two images), :func:`pair_ceiling` what any predictor can reach (each pair's majority),
and :func:`leave_one_set_out` the agreement of a fitted measure on sets it never saw.
Pure Python and NumPy; the split of the brief (fit on sets below 47, report on 49 and
50) is the caller's (:func:`split_votes`).
"""

from __future__ import annotations

import collections
import pathlib
from typing import Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

# The release's method numbers 1..8.
METHODS = ("CR", "SV", "MULTIOP", "SC", "SCL", "SM", "SNS", "WARP")
# Sets whose votes may be used to fit or tune (the rest are for the report).
FIT_BELOW = 47


class Vote(NamedTuple):
  session: str  # the session file's stem
  set_id: int
  a: str  # method names (METHODS)
  b: str
  chosen: str  # a or b
  seconds: float


def parse_session(text: str, session: str = "") -> list[Vote]:
  """The votes of one session file's text; header, checkpoint and malformed lines are
  skipped (a vote line has at least six fields, five integers and a time, and its
  chosen method is one of the pair)."""
  out = []
  for line in text.splitlines():
    fields = line.strip().split("|")
    if len(fields) < 6:
      continue
    try:
      _, set_id, a, b, chosen = (int(x) for x in fields[:5])
      seconds = float(fields[5])
    except ValueError:
      continue
    if a == b or chosen not in (a, b) or not all(1 <= m <= len(METHODS) for m in (a, b)):
      continue
    out.append(Vote(session, set_id, METHODS[a - 1], METHODS[b - 1], METHODS[chosen - 1],
                    seconds))
  return out


def read_sessions(folder: str | pathlib.Path) -> list[Vote]:
  """Every vote of every ``*.dat`` file in ``folder`` (sorted by file name)."""
  files = sorted(pathlib.Path(folder).glob("*.dat"))
  if not files:
    raise FileNotFoundError(f"no session files (*.dat) in {folder}")
  votes = []
  for f in files:
    votes += parse_session(f.read_text(errors="replace"), f.stem)
  return votes


def split_votes(votes: Iterable[Vote], part: str) -> list[Vote]:
  """"fit": the votes on sets below :data:`FIT_BELOW`; "report": the others."""
  if part not in ("fit", "report"):
    raise ValueError(f"part must be fit or report, got {part!r}")
  return [v for v in votes if (v.set_id < FIT_BELOW) == (part == "fit")]


def win_rates(votes: Iterable[Vote]) -> dict[str, float]:
  """Each method's share of the votes it appeared in that chose it."""
  wins, shown = collections.Counter(), collections.Counter()
  for v in votes:
    shown[v.a] += 1
    shown[v.b] += 1
    wins[v.chosen] += 1
  return {m: wins[m] / shown[m] for m in METHODS if shown[m]}


Scores = Mapping[tuple[int, str], float]  # (set id, method) -> score, higher = better


def _outcomes(votes: Sequence[Vote], scores: Scores) -> tuple[np.ndarray, list]:
  """Per vote: 1 if the measure agrees, 0.5 on a tie, 0 if not; and the pair keys.
  Votes on an image without a score are skipped."""
  got, pairs = [], []
  for v in votes:
    sa, sb = scores.get((v.set_id, v.a)), scores.get((v.set_id, v.b))
    if sa is None or sb is None:
      continue
    s_chosen, s_other = (sa, sb) if v.chosen == v.a else (sb, sa)
    got.append(1.0 if s_chosen > s_other else 0.5 if s_chosen == s_other else 0.0)
    pairs.append((v.set_id, *sorted((v.a, v.b))))
  return np.asarray(got, np.float64), pairs


class Agreement(NamedTuple):
  rate: float  # share of votes the measure agrees with (nan without votes)
  low: float  # 95% bootstrap interval over the voted pairs
  high: float
  votes: int


def _bootstrap(values: np.ndarray, groups: list, draws: int, seed: int) -> tuple[float, float]:
  if len(values) == 0:
    return float("nan"), float("nan")
  keys = sorted(set(groups))
  index = {k: i for i, k in enumerate(keys)}
  g = np.asarray([index[k] for k in groups])
  sums = np.bincount(g, weights=values, minlength=len(keys))
  counts = np.bincount(g, minlength=len(keys)).astype(np.float64)
  rng = np.random.default_rng(seed)
  pick = rng.integers(0, len(keys), size=(draws, len(keys)))
  rates = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
  lo, hi = np.percentile(rates, [2.5, 97.5])
  return float(lo), float(hi)


def agreement(votes: Sequence[Vote], scores: Scores, draws: int = 2000,
              seed: int = 0) -> Agreement:
  """How often ``scores`` (higher = better) pick the method people chose."""
  got, pairs = _outcomes(votes, scores)
  if len(got) == 0:
    return Agreement(float("nan"), float("nan"), float("nan"), 0)
  lo, hi = _bootstrap(got, pairs, draws, seed)
  return Agreement(float(got.mean()), lo, hi, len(got))


def agreement_by_set(votes: Sequence[Vote], scores: Scores) -> dict[int, Agreement]:
  """:func:`agreement` per set id."""
  by = collections.defaultdict(list)
  for v in votes:
    by[v.set_id].append(v)
  return {s: agreement(vs, scores) for s, vs in sorted(by.items())}


def pair_ceiling(votes: Sequence[Vote]) -> float:
  """The agreement of the best possible predictor: on each pair, the share of its votes
  that went to the pair's majority (a split pair counts half either way)."""
  by = collections.defaultdict(collections.Counter)
  for v in votes:
    by[(v.set_id, *sorted((v.a, v.b)))][v.chosen] += 1
  agree = sum(max(c.values()) for c in by.values())  # a split pair: half, either way
  return agree / max(1, sum(sum(c.values()) for c in by.values()))


def leave_one_set_out(votes: Sequence[Vote], fit: Callable[[Sequence[Vote]], Scores],
                      draws: int = 2000, seed: int = 0) -> tuple[Agreement, dict[int, float]]:
  """The agreement of a fitted measure on sets it was not fitted on: for each set,
  ``fit(votes of the other sets)`` returns scores, which are judged on that set's votes
  only; the pooled outcomes give the rate and its interval, and the per-set rates are
  returned beside it."""
  ids = sorted({v.set_id for v in votes})
  got_all, pairs_all, per_set = [], [], {}
  for held in ids:
    train = [v for v in votes if v.set_id != held]
    test = [v for v in votes if v.set_id == held]
    got, pairs = _outcomes(test, fit(train))
    if len(got):
      per_set[held] = float(got.mean())
    got_all.append(got)
    pairs_all += pairs
  got = np.concatenate(got_all) if got_all else np.zeros((0,))
  if len(got) == 0:
    return Agreement(float("nan"), float("nan"), float("nan"), 0), per_set
  lo, hi = _bootstrap(got, pairs_all, draws, seed)
  return Agreement(float(got.mean()), lo, hi, len(got)), per_set
