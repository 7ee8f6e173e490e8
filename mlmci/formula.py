"""The one reader of model formulas: which data columns an lme4-style formula uses.

:func:`mlmci.mixed.fit` (lme4's syntax) and :func:`mlmci.bayes.fit` (bambi's, the
same syntax) check the columns a formula names before they fit it, so that a
missing column or a missing value is reported by name. Both read the formula with
:func:`parse_formula`: the fixed part, the ``(... | group)`` terms, function calls
such as ``C(x)``, ``I(x**2)`` or ``np.log(x)`` (whose arguments are columns, their
names are not) and formulae's ``{x + 1}``, interactions ``a:b`` and ``a*b``, and ``0 +`` or ``- 1``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from mlmci.errors import DataError, DataTypeError

__all__ = ["FormulaTerms", "RandomTerm", "parse_formula"]

# Outside a function call, a formula is names and numbers joined by formula operators.
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_QUOTED = re.compile(r"`([^`]+)`")
_QUOTED_BACK = re.compile(r"_mlmci_quoted_\d+")


@dataclass(frozen=True)
class RandomTerm:
    """One ``(expr | group)`` term of a formula.

    ``columns`` are the data columns of ``expr`` (empty for ``(1 | g)``),
    ``factors`` the grouping columns (``("a", "b")`` for ``a:b`` or ``a/b``),
    ``nested`` whether they were written ``a/b`` (lme4: ``(1 | a) + (1 | a:b)``),
    and ``correlated`` is False for ``||`` (uncorrelated effects).
    """

    columns: tuple[str, ...]
    factors: tuple[str, ...]
    nested: bool
    correlated: bool


@dataclass(frozen=True)
class FormulaTerms:
    """The data columns of a formula, by part."""

    #: The columns of the left-hand side (two for bambi's ``p(successes, trials)``).
    response: tuple[str, ...]
    #: The columns of the fixed part, in order of first mention.
    fixed: tuple[str, ...]
    #: The ``(expr | group)`` terms, in order.
    random: tuple[RandomTerm, ...]

    @property
    def columns(self) -> list[str]:
        """Every column the formula uses, once each, in order of first mention."""
        names = [*self.response, *self.fixed]
        for term in self.random:
            names += [*term.columns, *term.factors]
        return list(dict.fromkeys(names))


def parse_formula(formula: str) -> FormulaTerms:
    """The data columns an lme4-style formula ``response ~ fixed + (expr | group)`` uses.

    Numbers (``0 +``, ``- 1``, ``1 +``) are not columns; neither are the names of
    functions (``C``, ``I``, ``np.log``, ``scale``), but the names in their arguments
    are. A column name that is not a Python identifier can be quoted in backticks,
    as bambi allows (``y ~ `dose (mg)` + (1 | g)``). Whether the columns exist in the data
    is for the caller to check (with :func:`mlmci.validation.require_columns`).

    Raises
    ------
    DataTypeError
        ``formula`` is not a string.
    DataError
        The formula does not parse: no ``~``, unbalanced parentheses, a ``|``
        outside ``( ... | group)``, a grouping that is not a column (or ``:`` and
        ``/`` of columns), or syntax that is not a formula.

    Examples
    --------
    >>> terms = parse_formula("y ~ 0 + C(school) + I(x**2) + x:z + (1 + x || school/class)")
    >>> terms.columns
    ['y', 'school', 'x', 'z', 'class']
    >>> terms.random[0]
    RandomTerm(columns=('x',), factors=('school', 'class'), nested=True, correlated=False)
    """
    if not isinstance(formula, str):
        raise DataTypeError(
            f"formula must be a string like 'y ~ x + (1 | g)', got {type(formula).__name__}."
        )
    if "~" not in formula:
        raise DataError(f"formula {formula!r} has no '~': write it like 'y ~ x + (1 | g)'.")
    quoted: dict[str, str] = {}

    def placeholder(match: re.Match) -> str:
        key = f"_mlmci_quoted_{len(quoted)}"
        quoted[key] = match.group(1)
        return key

    lhs, rhs = _QUOTED.sub(placeholder, formula).split("~", 1)
    if "~" in rhs:
        raise DataError(f"formula {formula!r} does not parse: it has more than one '~'.")
    fixed, bars = _split_bars(rhs, formula)
    random = []
    for expr, double, group in bars:
        factors = tuple(f.strip() for f in re.split(r"[/:]", group))
        if not all(f.isidentifier() for f in factors):
            shown = _QUOTED_BACK.sub(lambda m: f"`{quoted[m.group(0)]}`", group.strip())
            raise DataError(f"formula {formula!r}: the grouping {shown!r} is not a column.")
        factors = tuple(quoted.get(f, f) for f in factors)
        columns = tuple(_names(expr, formula, quoted))
        random.append(RandomTerm(columns, factors, nested="/" in group, correlated=not double))
    return FormulaTerms(
        response=tuple(_names(lhs, formula, quoted)),
        fixed=tuple(_names(fixed, formula, quoted)),
        random=tuple(random),
    )


def _split_bars(rhs: str, formula: str) -> tuple[str, list[tuple[str, bool, str]]]:
    """The fixed part (each bar term replaced by ``0``) and each ``(expr | group)`` term."""
    stack: list[list] = []  # per open "(": its position, its "|" position, whether "||"
    spans: list[tuple[int, int, str, bool, str]] = []
    for pos, char in enumerate(rhs):
        if char == "(":
            stack.append([pos, None, False])
        elif char == "|":
            if not stack:
                raise DataError(
                    f"formula {formula!r} does not parse: a '|' outside '( ... | group)'."
                )
            top = stack[-1]
            if top[1] is None:
                top[1] = pos
            elif top[1] == pos - 1 and not top[2]:
                top[2] = True
            else:
                raise DataError(f"formula {formula!r} does not parse: two bars in one term.")
        elif char == ")":
            if not stack:
                raise DataError(f"formula {formula!r} does not parse: an unmatched ')'.")
            start, bar, double = stack.pop()
            if bar is None:
                continue
            if spans and spans[-1][0] > start:
                raise DataError(f"formula {formula!r} does not parse: a bar term inside another.")
            spans.append((start, pos, rhs[start + 1 : bar], double, rhs[bar + 1 + double : pos]))
    if stack:
        raise DataError(f"formula {formula!r} does not parse: an unmatched '('.")
    fixed, end = [], 0
    for start, stop, *_ in spans:
        fixed.append(rhs[end:start] + "0")
        end = stop + 1
    fixed.append(rhs[end:])
    return "".join(fixed), [(expr, double, group) for _, _, expr, double, group in spans]


def _names(code: str, formula: str, quoted: dict[str, str]) -> list[str]:
    """The columns one part of a formula reads, in order of first mention."""
    text = code.strip()
    if not text:
        return []
    # Formula operators are Python operators too (":" read as "*"), so ast finds the names.
    try:
        tree = ast.parse(text.replace(":", "*"), mode="eval")
    except SyntaxError:
        tree = None
    if tree is None or not _formula_shaped(tree.body):
        raise DataError(
            f"formula {formula!r} does not parse near {text!r}: write it like "
            "'y ~ x1 + x2 + (1 | g)', with column names that are Python identifiers "
            "(or quoted in backticks)."
        )
    functions = {
        id(node)
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        for node in ast.walk(call.func)
    }
    # ast.walk is breadth first: sort by position for the order of first mention.
    found = sorted(
        (node.lineno, node.col_offset, node.id)
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and id(node) not in functions
    )
    return [quoted.get(name, name) for name in dict.fromkeys(name for *_, name in found)]


def _formula_shaped(node: ast.AST) -> bool:
    """Names and numbers joined by formula operators; anything inside a call or braces."""
    if isinstance(node, ast.BinOp):
        return (
            isinstance(node.op, _OPERATORS)
            and _formula_shaped(node.left)
            and _formula_shaped(node.right)
        )
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, (ast.USub, ast.UAdd)) and _formula_shaped(node.operand)
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
    # A call's arguments, and formulae's {x + 1} (I(x + 1)), may hold any expression.
    return isinstance(node, (ast.Name, ast.Call)) or (
        isinstance(node, ast.Set) and len(node.elts) == 1
    )
