"""The calculator: exact where it can be, refusing everything that is not arithmetic."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_agent.tools.calculator import CalculationError, evaluate, format_result


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 ** 3 ** 2", 512),  # right-associative
        ("-2 ** 2", -4),  # ** binds tighter than unary minus
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("-7 % 3", 2),
        ("6 / 3", 2),
        ("2 ** 100", 2**100),
        ("10 ** 30 + 1", 10**30 + 1),
        ("0.1 + 0.2", Fraction(3, 10)),
        ("1 / 3 * 3", 1),
        ("1e400 / 1e399", 10),
        ("2 ** -2", Fraction(1, 4)),
        ("1_000 + 0x10", 1016),
        ("sqrt(16)", 4),
        ("sqrt(9 / 4)", Fraction(3, 2)),
        ("abs(-3)", 3),
        ("round(2.5)", 2),
        ("round(1 / 3, 3)", Fraction(333, 1000)),
        ("min(3, 1, 2)", 1),
        ("max(3, 1, 2)", 3),
        ("floor(-2.5)", -3),
        ("ceil(2.1)", 3),
        ("+".join(["1"] * 250), 250),  # the longest sum 500 characters allow
    ],
)
def test_exact_results(expression: str, expected: int | Fraction) -> None:
    result = evaluate(expression)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("sqrt(2)", math.sqrt(2)),
        ("2 ** 0.5", math.sqrt(2)),
        ("pi", math.pi),
        ("tau / 2", math.pi),
        ("e", math.e),
        ("log(e)", 1.0),
        ("log(8, 2)", 3.0),
        ("log10(1000)", 3.0),
        ("log(10 ** 5000)", 5000 * math.log(10)),
        ("exp(1)", math.e),
        ("sin(pi / 2)", 1.0),
        ("cos(0)", 1.0),
        ("tan(0)", 0.0),
    ],
)
def test_float_results(expression: str, expected: float) -> None:
    assert evaluate(expression) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 / 0", "division by zero"),
        ("1 // 0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("x", "unknown name 'x'"),
        ("__import__('os')", "unknown function '__import__'"),
        ("eval('1')", "unknown function 'eval'"),
        ("math.sqrt(4)", "unsupported syntax: Attribute"),
        ("(1).__class__", "unsupported syntax: Attribute"),
        ("lambda: 1", "unsupported syntax: Lambda"),
        ("[x for x in (1, 2)]", "unsupported syntax: ListComp"),
        ("sum(x for x in (1, 2))", "unknown function 'sum'"),
        ("(x := 1)", "unsupported syntax: NamedExpr"),
        ("[1][0]", "unsupported syntax: Subscript"),
        ("1 if 1 else 2", "unsupported syntax: IfExp"),
        ("1 < 2", "unsupported syntax: Compare"),
        ("2 ^ 3", "unsupported syntax: BitXor (use ** for powers)"),
        ("'a' * 3", "unsupported syntax: str literal"),
        ("True + 1", "unsupported syntax: bool literal"),
        ("1j", "unsupported syntax: complex literal"),
        ("sqrt(x=4)", "sqrt() takes only plain arguments"),
        ("sqrt(1, 2)", "sqrt() takes 1 arguments, got 2"),
        ("min()", "min() takes 1+ arguments, got 0"),
        ("2 ** 10001", "exponent too large"),
        ("2 ** 2 ** 2 ** 2 ** 2", "exponent too large"),
        ("10 ** 10000", "result too large"),
        ("(10 ** 5000) * (10 ** 5000)", "result too large"),
        ("1e-99999999", "more than 10000 digits"),
        ("exp(1000)", "number too large"),
        ("1e300 ** 2.5", "number too large"),
        ("sin(10 ** 400)", "number too large"),
        ("(-8) ** (1 / 3)", "not a real number"),
        ("sqrt(-1)", "sqrt() is undefined"),
        ("log(0)", "log() is undefined"),
        ("round(1, 1000)", "round() digits"),
        ("-" * 300 + "1", "too deeply nested"),
        ("1 +", "invalid expression"),
    ],
)
def test_rejections(expression: str, message: str) -> None:
    with pytest.raises(CalculationError, match=re.escape(message)):
        evaluate(expression)


def test_calculation_error_is_a_value_error() -> None:
    assert issubclass(CalculationError, ValueError)


@pytest.mark.parametrize(
    ("expression", "shown"),
    [
        ("0.1 + 0.2", "0.3"),
        ("2 ** 100", "1267650600228229401496703205376"),
        ("1 / 3", "0.333333333333333"),
        ("7 / 2", "3.5"),
        ("sqrt(2)", "1.4142135623731"),
        ("log10(1000)", "3"),
        ("sqrt(2) ** 2", "2"),  # not 2.0000000000000004
        ("1 / 8", "0.125"),
        ("1.5e-7", "1.5e-7"),
        ("10 ** 20 + 1 / 3", "1e+20"),  # 15 significant digits for non-integers
        ("exp(50)", "5.18470552858707e+21"),
    ],
)
def test_format_result(expression: str, shown: str) -> None:
    assert format_result(evaluate(expression)) == shown


# --- property: integer arithmetic agrees with Python's own ------------------------------

_OPS: dict[str, Callable[[Fraction, Fraction], Fraction]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
}


@st.composite
def _expressions(draw: st.DrawFn, depth: int = 3) -> tuple[str, Fraction]:
    """An expression text and its value, computed with Python's exact arithmetic."""
    if depth == 0 or draw(st.booleans()):
        n = draw(st.integers(-(10**20), 10**20))
        return f"({n})", Fraction(n)
    left_text, left = draw(_expressions(depth=depth - 1))
    right_text, right = draw(_expressions(depth=depth - 1))
    symbol = draw(st.sampled_from(sorted(_OPS)))
    if right == 0 and symbol in ("/", "//", "%"):
        symbol = "+"  # division by zero has its own test
    # Fraction // Fraction is an int, and int / int a float: keep the reference exact.
    return f"({left_text} {symbol} {right_text})", Fraction(_OPS[symbol](left, right))


@given(_expressions())
def test_agrees_with_python_arithmetic(case: tuple[str, Fraction]) -> None:
    text, expected = case
    assert evaluate(text) == expected


@given(st.integers(-(10**6), 10**6), st.integers(0, 40))
def test_powers_are_exact(base: int, exponent: int) -> None:
    assert evaluate(f"({base}) ** {exponent}") == base**exponent


@given(st.integers(-(10**9), 10**9), st.integers(-(10**9), 10**9).filter(bool))
def test_division_matches_python(a: int, b: int) -> None:
    assert evaluate(f"{a} // {b}") == a // b
    assert evaluate(f"{a} % {b}") == a % b
    assert evaluate(f"{a} / {b}") == Fraction(a, b)
