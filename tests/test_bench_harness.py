"""bench/_harness.report: the summary line `make bench` repeats, whose figure must read as its verdict does."""

import pytest

from bench._harness import report


@pytest.mark.parametrize(
    ("ratio", "op", "target", "expected"),
    [
        (0.5312, ">=", 0.5, "ratio=0.53 target=>=0.5 ok"),
        (0.4991, ">=", 0.5, "ratio=0.499 target=>=0.5 miss"),  # to two decimals it would read 0.50
        (0.49999, ">=", 0.5, "ratio=0.49999 target=>=0.5 miss"),
        (0.5, ">=", 0.5, "ratio=0.50 target=>=0.5 ok"),
        (1.5004, "<=", 1.5, "ratio=1.5004 target=<=1.5 miss"),
        (1.4996, "<=", 1.5, "ratio=1.50 target=<=1.5 ok"),  # rounds onto the target, which a cost may reach
        (6.03, "<=", 1.5, "ratio=6.03 target=<=1.5 miss"),
    ],
)
def test_the_figure_reads_as_the_verdict(capsys, ratio, op, target, expected):
    assert report("m", ratio, op, target) == f"BENCH m {expected}"
    assert capsys.readouterr().out == f"BENCH m {expected}\n"


def test_an_unknown_operator_is_refused():
    with pytest.raises(ValueError, match="op must be one of"):
        report("m", 1.0, "<", 1.5)
