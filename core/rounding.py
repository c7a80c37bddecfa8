"""One way to round numbers that users see, used by every API and report.

- `ratio(numerator, denominator)`: one decimal place, half away from zero (25/4 = 6.25 -> 6.3), None when
  the denominator is 0. Decimal arithmetic, so 6.25 is not a float that prints as 6.2 after `round()`.
- `round_half_up(value, places)`: the same rule for any value (averages, scores).
- `percentages(counts)`: whole percentages that add up to exactly 100 (largest-remainder method; ties
  go to the earlier item), or all zeros when every count is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal


def round_half_up(value: float | int | Decimal | None, places: int = 1) -> float | None:
    if value is None:
        return None
    quantum = Decimal(1).scaleb(-places)
    return float(Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def ratio(numerator: int | float, denominator: int | float, places: int = 1) -> float | None:
    if not denominator:
        return None
    exact = Decimal(str(numerator)) / Decimal(str(denominator))
    return float(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def percentage(part: int | float, whole: int | float, places: int = 0) -> float | int:
    """One percentage, half up; 0 when `whole` is 0. Whole numbers come back as int."""
    if not whole:
        return 0
    exact = Decimal(str(part)) * 100 / Decimal(str(whole))
    value = exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return int(value) if places == 0 else float(value)


def percentages(counts: Sequence[int]) -> list[int]:
    total = sum(counts)
    if total <= 0:
        return [0 for _ in counts]
    exact = [Decimal(count) * 100 / total for count in counts]
    floors = [int(value) for value in exact]
    short = 100 - sum(floors)
    by_remainder = sorted(range(len(counts)), key=lambda i: (-(exact[i] - floors[i]), i))
    for index in by_remainder[:short]:
        floors[index] += 1
    return floors
