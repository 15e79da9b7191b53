"""A safe arithmetic evaluator for the ``calculator`` tool. Pure: no I/O, no ``eval``.

The expression is parsed with ``ast.parse(mode="eval")`` and walked node by node;
anything not explicitly allowed is refused. Arithmetic is exact where it can be:
integers and decimal literals become ``Fraction``s, so ``0.1 + 0.2`` is exactly
``3/10`` and ``10**30 + 1`` keeps every digit. Irrational functions (``sqrt`` of a
non-square, ``log``, ``sin``…) and non-integer powers fall back to ``float``.
Sizes are bounded so a 500-character expression cannot eat the worker's CPU or memory.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from decimal import Decimal, localcontext
from fractions import Fraction

Number = int | Fraction | float
"""What ``evaluate`` returns: ``int`` for whole exact results, ``Fraction`` for other
exact ones, ``float`` once an irrational step was taken."""

MAX_DIGITS = 10_000
"""Largest exact result (numerator or denominator), in decimal digits."""
MAX_EXPONENT = 10_000
"""Largest ``|exponent|`` of an exact power."""
MAX_DEPTH = 260
"""Deepest nesting of operations. ``1+1+…`` nests once per ``+``, so 260 admits any
500-character sum while keeping the walk far from Python's recursion limit."""
SIGNIFICANT_DIGITS = 15
"""Digits shown for inexact results; a float is only good for ~15-17."""

_Value = Fraction | float
_LOG2_10 = math.log2(10)


class CalculationError(ValueError):
    """The expression is not allowed or cannot be evaluated; the message says why."""


_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_BINARY: dict[type[ast.operator], Callable[[_Value, _Value], _Value]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression; raises ``CalculationError`` when it is not
    allowed or has no finite real value."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise CalculationError(f"invalid expression: {e.msg}") from e
    except (RecursionError, MemoryError) as e:  # the parser's own nesting limits
        raise CalculationError("expression too deeply nested") from e
    try:
        value = _Evaluator(expression.strip()).visit(tree.body, 0)
    except RecursionError as e:  # MAX_DEPTH should make this unreachable
        raise CalculationError("expression too deeply nested") from e
    if isinstance(value, Fraction) and value.denominator == 1:
        return value.numerator
    return value


def format_result(value: Number) -> str:
    """Show a result: integers in full, other numbers to 15 significant digits, so a
    float's binary noise never shows (``sqrt(2) ** 2`` reads ``2``, not
    ``2.0000000000000004``)."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    with localcontext() as ctx:
        ctx.prec = SIGNIFICANT_DIGITS
        if isinstance(value, Fraction):
            decimal = Decimal(value.numerator) / Decimal(value.denominator)
        else:
            decimal = +Decimal(value)  # unary plus rounds to the context precision
    return format(decimal.normalize(), "g")


class _Evaluator:
    """One walk of one expression; ``source`` is needed to read decimal literals exactly."""

    def __init__(self, source: str) -> None:
        self._source = source

    def visit(self, node: ast.expr, depth: int) -> _Value:
        if depth > MAX_DEPTH:
            raise CalculationError("expression too deeply nested")
        try:
            value = self._visit(node, depth + 1)
        except ZeroDivisionError as e:
            raise CalculationError("division by zero") from e
        except OverflowError as e:
            raise CalculationError("number too large") from e
        return _checked(value)

    def _visit(self, node: ast.expr, depth: int) -> _Value:
        if isinstance(node, ast.Constant):
            return self._literal(node)
        if isinstance(node, ast.Name):
            if node.id not in _CONSTANTS:
                raise CalculationError(f"unknown name {node.id!r}")
            return _CONSTANTS[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
            operand = self.visit(node.operand, depth)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            left, right = self.visit(node.left, depth), self.visit(node.right, depth)
            if isinstance(node.op, ast.Pow):
                return _power(left, right)
            if type(node.op) in _BINARY:
                return _BINARY[type(node.op)](left, right)
            hint = " (use ** for powers)" if isinstance(node.op, ast.BitXor) else ""
            raise CalculationError(f"unsupported syntax: {type(node.op).__name__}{hint}")
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        raise CalculationError(f"unsupported syntax: {type(node).__name__}")

    def _literal(self, node: ast.Constant) -> _Value:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CalculationError(f"unsupported syntax: {type(value).__name__} literal")
        if isinstance(value, int):
            return _checked(Fraction(value))
        # Read the literal's text, not the float, so 0.1 is exactly 1/10 and 1e400 is
        # not infinity.
        text = ast.get_source_segment(self._source, node) or repr(value)
        decimal = Decimal(text.replace("_", ""))
        exponent = decimal.as_tuple().exponent
        if not isinstance(exponent, int) or abs(exponent) > MAX_DIGITS:  # 1e-9999999 hangs
            raise CalculationError(f"number has more than {MAX_DIGITS} digits")
        return _checked(Fraction(decimal))

    def _call(self, node: ast.Call, depth: int) -> _Value:
        if not isinstance(node.func, ast.Name):
            raise CalculationError(f"unsupported syntax: {type(node.func).__name__}")
        name = node.func.id
        function = _FUNCTIONS.get(name)
        if function is None:
            raise CalculationError(f"unknown function {name!r}")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise CalculationError(f"{name}() takes only plain arguments")
        low, high = _ARITY[name]
        if not low <= len(node.args) <= high:
            expected = str(low) if low == high else f"{low} to {high}" if high < 99 else f"{low}+"
            raise CalculationError(f"{name}() takes {expected} arguments, got {len(node.args)}")
        args = [self.visit(a, depth) for a in node.args]
        try:
            return function(*args)
        except CalculationError:
            raise
        except ValueError as e:  # math domain errors: sqrt(-1), log(0), acos(2)…
            raise CalculationError(f"{name}() is undefined for these arguments") from e


def _checked(value: _Value | int | complex) -> _Value:
    """Refuse values that are too big to be useful or not real finite numbers; keep
    exact values as ``Fraction`` (``//``, ``floor``, ``round`` give ``int``)."""
    if isinstance(value, int):
        value = Fraction(value)
    if isinstance(value, Fraction):
        if max(value.numerator.bit_length(), value.denominator.bit_length()) > (
            MAX_DIGITS * _LOG2_10
        ):
            raise CalculationError(f"result too large (more than {MAX_DIGITS} digits)")
        return value
    if isinstance(value, complex):
        raise CalculationError("result is not a real number")
    if not math.isfinite(value):
        raise CalculationError("number too large")
    return value


def _power(base: _Value, exponent: _Value) -> _Value:
    if isinstance(exponent, Fraction) and exponent.denominator == 1:
        if abs(exponent) > MAX_EXPONENT:
            raise CalculationError("exponent too large")
        if isinstance(base, Fraction) and abs(base) not in (0, 1):
            # Estimate the result's size before computing it.
            bits = max(base.numerator.bit_length(), base.denominator.bit_length())
            if (bits - 1) * abs(exponent) > MAX_DIGITS * _LOG2_10:
                raise CalculationError(f"result too large (more than {MAX_DIGITS} digits)")
        return base**exponent
    # A fractional power is irrational in general: compute it in floating point.
    return _checked(float(base) ** float(exponent))  # a negative base gives complex


def _sqrt(x: _Value) -> _Value:
    if isinstance(x, Fraction) and x >= 0:
        num, den = math.isqrt(x.numerator), math.isqrt(x.denominator)
        if num * num == x.numerator and den * den == x.denominator:
            return Fraction(num, den)  # exact for perfect squares: sqrt(16) is 4
    return math.sqrt(x)


def _ln(x: _Value, log: Callable[[float], float] = math.log) -> float:
    # math.log accepts huge ints; split fractions so they need not fit a float.
    if isinstance(x, Fraction):
        if x <= 0:
            raise ValueError("math domain error")
        return log(x.numerator) - log(x.denominator)
    return log(x)


def _log(x: _Value, base: _Value | None = None) -> float:
    return _ln(x) if base is None else _ln(x) / _ln(base)


def _round(x: _Value, digits: _Value | None = None) -> _Value:
    if digits is None:
        return Fraction(round(x))
    if not (isinstance(digits, Fraction) and digits.denominator == 1 and abs(digits) <= 100):
        raise CalculationError("round() digits must be a whole number between -100 and 100")
    return round(Fraction(x), int(digits))  # exact: round(sqrt(2), 3) is 1414/1000


_FUNCTIONS: dict[str, Callable[..., _Value]] = {
    "sqrt": _sqrt,
    "abs": abs,
    "round": _round,
    "min": lambda *args: min(args),
    "max": lambda *args: max(args),
    "floor": lambda x: Fraction(math.floor(x)),
    "ceil": lambda x: Fraction(math.ceil(x)),
    "log": _log,
    "log10": lambda x: _ln(x, math.log10),
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
_ARITY: dict[str, tuple[int, int]] = {name: (1, 1) for name in _FUNCTIONS} | {
    "round": (1, 2),
    "log": (1, 2),
    "min": (1, 99),
    "max": (1, 99),
}
