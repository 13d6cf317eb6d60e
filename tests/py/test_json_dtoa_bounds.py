"""The float printer's fast path (csrc/json/dtoa.c, to_decimal) in exact arithmetic.

The fast path decides from fixed-point numbers: the scaled value V = c * 2^q * 10^-k
taken from one exact 192-bit product with the table's g, its distance to the candidate
below, its fraction, and the half-spacing d from the table. It takes a decision only when
the two sides differ by more than 8 units, which is sound only if each of those numbers is
off by less than one unit: checked here with Fractions against csrc/json/dtoa_scale_table.h
(the formulas below repeat the C ones), for every exponent and for random and edge
significands. Also checks that the table is what gen_pow10.py --dtoa prints.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

JSON_DIR = Path(__file__).resolve().parents[2] / "csrc" / "json"
TABLE = JSON_DIR / "dtoa_scale_table.h"
ENTRY = re.compile(r"\{0x([0-9a-f]+)u, 0x([0-9a-f]+)u, 0x([0-9a-f]+)u, (-?\d+), (\d+)\}")
MASK64 = (1 << 64) - 1


def load_table() -> list[tuple[int, int, int, int]]:
    rows = ENTRY.findall(TABLE.read_text())
    assert len(rows) == 2048
    return [
        ((int(hi, 16) << 64) | int(lo, 16), int(dd, 16), int(k), int(sh))
        for hi, lo, dd, k, sh in rows
    ]


def test_table_is_generated() -> None:
    out = subprocess.run(
        [sys.executable, str(JSON_DIR / "gen_pow10.py"), "--dtoa"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == TABLE.read_text()


def test_pow10_table_is_generated() -> None:
    """pow10_table.h (the one definition of the 128-bit powers of ten, shared by the
    printer and the parser) is what gen_pow10.py prints, and its range is dtoa.h's."""
    out = subprocess.run(
        [sys.executable, str(JSON_DIR / "gen_pow10.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == (JSON_DIR / "pow10_table.h").read_text()
    header = (JSON_DIR / "dtoa.h").read_text()
    assert "#define JSON_POW10_MIN (-342)" in header
    assert "#define JSON_POW10_MAX 324" in header


def test_fast_path_error_bounds() -> None:
    table = load_table()
    rng = random.Random(1234)
    edges = [1, 2, 3, (1 << 52) - 1, (1 << 52) - 2, 1 << 51]
    worst = [Fraction(0)] * 3
    for bexp in range(1, 2047):
        g, dd, k, shift = table[bexp]
        q = bexp - 1075
        d = Fraction(2) ** (q - 1) / Fraction(10) ** k
        assert Fraction(1, 2) <= d < 5
        for frac in edges + [rng.getrandbits(52) or 1 for _ in range(6)]:
            c = frac | (1 << 52)
            # dtoa.c: w = floor(g * (c << shift) / 2^64), t = w >> 64, lo = low word.
            w = (g * (c << shift)) >> 64
            t, lo = w >> 64, w & MASK64
            s = t >> 1
            sp10 = s // 10 * 10
            r = ((t - 2 * sp10) << 57) | (lo >> 7)
            fv = ((t & 1) << 63) | (lo >> 1)
            v = Fraction(c) * Fraction(2) ** q / Fraction(10) ** k
            assert 10**15 <= s < 10**17 and r < 10 << 58
            errors = (
                abs((v - sp10) * 2**58 - r),  # distance to the shorter candidate below
                abs(d * 2**58 - dd),  # half-spacing
                abs((v - s) * 2**64 - fv),  # fraction (closest of s, s + 1)
            )
            worst = [max(a, b) for a, b in zip(worst, errors, strict=True)]
    assert all(e < 1 for e in worst), [float(e) for e in worst]
