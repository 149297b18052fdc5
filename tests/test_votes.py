"""quality.votes: reading the survey's sessions and judging measures against them."""

import numpy as np
import pytest

from dnr_jax.quality import votes

SESSION = """# New session started: 2016-08-24 23:09:22 (EDT)
# mode=1, expid=2, expType=0, user=0
2.3
1.2.3.4|1.2.3.4|Mozilla/5.0
1|23|1
0|4|3|4|3|5.846
1|50|5|2|2|6.078
2|50|6|1|1|3.575|17|23.738
CHECKPOINT|PASS
3|12|8|1|9|4.434
4|12|8|8|8|4.434
5|12|x|1|1|4.434
"""


def test_parse_session_keeps_only_vote_lines():
  got = votes.parse_session(SESSION, "s")
  assert got == [votes.Vote("s", 4, "MULTIOP", "SC", "MULTIOP", 5.846),
                 votes.Vote("s", 50, "SCL", "SV", "SV", 6.078),
                 votes.Vote("s", 50, "SM", "CR", "CR", 3.575)]


def test_read_sessions_and_split(tmp_path):
  (tmp_path / "a.dat").write_text(SESSION)
  (tmp_path / "b.txt").write_text(SESSION)  # not a session file
  got = votes.read_sessions(tmp_path)
  assert len(got) == 3 and {v.session for v in got} == {"a"}
  assert [v.set_id for v in votes.split_votes(got, "fit")] == [4]
  assert [v.set_id for v in votes.split_votes(got, "report")] == [50, 50]
  with pytest.raises(FileNotFoundError):
    votes.read_sessions(tmp_path / "b.txt")


def _v(set_id, a, b, chosen):
  return votes.Vote("s", set_id, a, b, chosen, 1.0)


def test_agreement_counts_agreements_ties_and_missing_scores():
  vs = [_v(1, "CR", "SC", "CR"), _v(1, "CR", "SC", "CR"), _v(1, "CR", "SC", "SC"),
        _v(1, "SV", "SC", "SV"), _v(1, "SM", "SC", "SM")]
  scores = {(1, "CR"): 2.0, (1, "SC"): 1.0, (1, "SV"): 1.0}  # SM unscored: skipped
  a = votes.agreement(vs, scores)
  assert a.votes == 4
  assert a.rate == pytest.approx((1 + 1 + 0 + 0.5) / 4)
  assert a.low <= a.rate <= a.high
  flipped = votes.agreement(vs, {k: -s for k, s in scores.items()})
  assert flipped.rate == pytest.approx(1.0 - a.rate)
  assert np.isnan(votes.agreement([], scores).rate)


def test_the_ceiling_is_each_pairs_majority():
  vs = [_v(1, "CR", "SC", "CR")] * 3 + [_v(1, "SC", "CR", "SC")] + [
      _v(2, "SV", "SM", "SV"), _v(2, "SV", "SM", "SM")]
  assert votes.pair_ceiling(vs) == pytest.approx((3 + 1) / 6)
  # the majority itself reaches the ceiling
  best = {(1, "CR"): 1.0, (1, "SC"): 0.0, (2, "SV"): 0.0, (2, "SM"): 0.0}
  assert votes.agreement(vs, best).rate == pytest.approx(votes.pair_ceiling(vs))
  assert votes.win_rates(vs)["CR"] == pytest.approx(3 / 4)


def test_leave_one_set_out_never_scores_a_set_with_its_own_votes():
  # a "fit" that memorises the training votes' winners scores unseen sets 0 (ties)
  vs = [_v(s, "CR", "SC", "CR") for s in (1, 2, 3) for _ in range(4)]
  seen = []

  def memorise(train):
    seen.append({v.set_id for v in train})
    return {(v.set_id, m): float(m == v.chosen) for v in train for m in (v.a, v.b)} | {
        (s, m): 0.0 for s in (1, 2, 3) for m in ("CR", "SC")
        if s not in {v.set_id for v in train}}

  a, per_set = votes.leave_one_set_out(vs, memorise)
  assert seen == [{2, 3}, {1, 3}, {1, 2}]
  assert a.rate == pytest.approx(0.5) and per_set == {1: 0.5, 2: 0.5, 3: 0.5}
  # a fit that generalises (CR better everywhere) agrees on every held-out set
  general = lambda train: {(s, m): float(m == "CR") for s in (1, 2, 3) for m in ("CR", "SC")}  # noqa: E731
  assert votes.leave_one_set_out(vs, general)[0].rate == 1.0
