"""A ledger row a profile cannot judge says so and names the profile that can."""

from __future__ import annotations

from pathlib import Path

import pytest

from medhe import claims

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("claim_id", "profile", "note", "expected"), [
    ("p-value", "quick", "needs 5 seeds", "not testable at profile quick: needs 5 seeds; run profile `full`"),
    ("convergence", "full", "", "not testable at profile full; run profile `paper`"),
    ("acc-medhe", "full", "substitute data; run profile `paper` with a network",
     "not testable at profile full: substitute data; run profile `paper` with a network"),
    ("scale", "quick", "no criterion", "not testable at profile quick: no criterion; no profile can"),
])
def test_not_testable_note_names_the_profile_that_can(claim_id, profile, note, expected) -> None:
    assert claims.not_testable_note(note, claim_id=claim_id, profile=profile) == expected


def test_every_row_without_results_says_where_it_can_be_judged(tmp_path: Path) -> None:
    """With no results at all, each row is either judged from fixed facts or names its profile."""
    rows = claims.build_ledger(ROOT / "claims" / "paper.yaml", root=tmp_path, profile="quick")
    untested = [r for r in rows if r.verdict == claims.NOT_TESTABLE]
    assert untested
    for r in untested:
        assert r.note.startswith("not testable at profile quick"), (r.id, r.note)
        no_profile = claims.TESTABLE_AT.get(r.id) == ()  # no stated criterion, or a property of the setup
        assert ("run profile `" in r.note) != no_profile, (r.id, r.note)
        assert ("no profile can" in r.note) == no_profile, (r.id, r.note)
