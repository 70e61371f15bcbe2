"""Observables as safe expressions over reconstructed objects.

Events are described by an :class:`EventObjects` container: named *collections* of Lorentz vectors (one
variable-length list per event, sorted by decreasing transverse momentum, e.g. jets ``j``, leptons ``l``,
photons ``a``), *singletons* (one vector per event, e.g. the missing transverse momentum ``met``) and per-event
*scalars* (e.g. ``njets``). The vectors are `vector <https://vector.readthedocs.io>`_ ``Momentum4D`` records in
`awkward <https://awkward-array.org>`_ arrays, so every expression is evaluated once for all events.

Expressions are written in a small Python-like language, parsed with :mod:`ast` and interpreted node by node; user
strings are never passed to ``eval``, ``exec`` or ``compile``. Supported:

* collections and their elements: ``j[0]`` (leading jet), ``l[-1]`` (softest lepton), ``j[j.pt > 30]``
  (filtered collection);
* vector attributes ``pt eta phi m mass E e energy px py pz p rapidity theta costheta Et mt ...`` and extra
  fields of the collection (e.g. ``j[0].btag``, ``l[0].charge``); on a whole collection they give one list per
  event (``j.pt``);
* vector methods ``deltaphi deltaeta deltaR deltaR2 deltaRapidityPhi deltaangle dot boost_p4 boostCM_of_p4``, e.g.
  ``j[0].deltaphi(j[1])``; vector sums and differences ``(a[0] + a[1]).m``;
* arithmetic ``+ - * / // % **``, comparisons (also chained), ``and or not``, ``x if cond else y``;
* functions ``abs sqrt log log10 exp sin cos tan arcsin arccos arctan arctan2 sinh cosh tanh hypot sign floor
  ceil where``; on lists per event ``len sum min max any all`` reduce over the objects (``sum(j.pt)`` is HT,
  ``len(j)`` the jet multiplicity), ``min``/``max`` of several arguments are element-wise;
* constants ``pi inf nan`` and numbers.

When an object does not exist in an event (``j[1]`` in a one-jet event) the result is *missing* for that event and
is replaced by the observable's ``default`` (NaN unless given). Plain Python callables ``f(objects) -> array`` of
shape ``(n_events,)`` are accepted as observables too.

Examples
--------
>>> obs = Observable("m_aa", "(a[0] + a[1]).m")            # doctest: +SKIP
>>> values = obs.evaluate(objects)                          # doctest: +SKIP
"""

from __future__ import annotations

import ast
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "EventObjects",
    "Expression",
    "ExpressionError",
    "Observable",
    "evaluate_observables",
    "make_vectors",
    "parse_expression",
    "require_hep",
]

logger = logging.getLogger(__name__)

HEP_INSTALL_HINT = "pip install skminer[hep]"

_VECTOR_ATTRIBUTES = frozenset({
    "pt", "pt2", "eta", "phi", "m", "mass", "m2", "mass2", "E", "e", "energy", "E2", "px", "py", "pz", "x", "y",
    "z", "t", "p", "p2", "mag", "mag2", "rho", "rho2", "rapidity", "pseudorapidity", "theta", "costheta",
    "cottheta", "Et", "Et2", "mt", "mt2", "Mt", "tau", "beta", "gamma", "M", "M2", "transverse_mass",
    "transverse_energy",
})
_VECTOR_METHODS = frozenset({
    "deltaphi", "deltaeta", "deltaR", "deltaR2", "deltaRapidityPhi", "deltaRapidityPhi2", "deltaangle", "dot",
    "boost_p4", "boostCM_of_p4",
})
_ELEMENTWISE = {
    "abs": np.abs, "sqrt": np.sqrt, "log": np.log, "log10": np.log10, "exp": np.exp, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "arcsin": np.arcsin, "arccos": np.arccos, "arctan": np.arctan, "asin": np.arcsin,
    "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "sign": np.sign,
    "floor": np.floor, "ceil": np.ceil,
}
_BINARY_FUNCTIONS = {"arctan2": np.arctan2, "atan2": np.arctan2, "hypot": np.hypot}
_REDUCING = frozenset({"len", "sum", "min", "max", "any", "all"})
FUNCTIONS = frozenset(_ELEMENTWISE) | frozenset(_BINARY_FUNCTIONS) | _REDUCING | {"where"}
CONSTANTS = {"pi": math.pi, "inf": math.inf, "nan": math.nan}
#: Longest expression accepted (characters); bounds parsing and validation cost of untrusted configurations.
MAX_EXPRESSION_LENGTH = 4096

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a ** b,
}
_CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b, ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
}


def require_hep() -> tuple[Any, Any]:
    """Import ``awkward`` and ``vector`` (the ``hep`` extra), registering vector's awkward behaviours.

    Returns
    -------
    (awkward, vector) modules

    Raises
    ------
    ImportError
        With installation instructions when the packages are missing.
    """
    try:
        import awkward as ak
        import vector
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"skminer.simulation needs awkward and vector for physics objects ({err}); install them "
                          f"with `{HEP_INSTALL_HINT}`") from err
    vector.register_awkward()
    return ak, vector


class ExpressionError(ValueError):
    """An observable or cut expression is malformed, uses a disallowed construct or cannot be evaluated."""


# ---------------------------------------------------------------------------------------------------------------
# Event objects
# ---------------------------------------------------------------------------------------------------------------
def make_vectors(pt: Any, eta: Any, phi: Any, mass: Any, **extra: Any) -> Any:
    """Build an awkward array of ``Momentum4D`` records from (possibly jagged) pt, eta, phi, mass arrays.

    Parameters
    ----------
    pt, eta, phi, mass : array-like (numpy or awkward, same structure)
    **extra
        Further per-object fields (e.g. ``btag``, ``charge``), same structure.

    Returns
    -------
    awkward.Array
        ``Momentum4D`` records with float64 kinematics.
    """
    ak, _ = require_hep()
    fields = {"pt": pt, "eta": eta, "phi": phi, "mass": mass}
    out = {k: ak.values_astype(ak.Array(v) if not isinstance(v, ak.Array) else v, np.float64)
           for k, v in fields.items()}
    for k, v in extra.items():
        out[k] = ak.Array(v) if not isinstance(v, ak.Array) else v
    return ak.zip(out, with_name="Momentum4D")


@dataclass
class EventObjects:
    """Reconstructed objects of ``n_events`` events, the input of observables and cuts.

    Parameters
    ----------
    n_events : int
    collections : mapping of str to awkward.Array
        Jagged ``Momentum4D`` arrays (``n_events * var``), each event's list sorted by decreasing pt.
    singletons : mapping of str to awkward.Array
        One ``Momentum4D`` record per event (e.g. ``met``).
    scalars : mapping of str to ndarray
        One number per event (e.g. ``njets``, ``weight``).
    """

    n_events: int
    collections: dict[str, Any] = field(default_factory=dict)
    singletons: dict[str, Any] = field(default_factory=dict)
    scalars: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ak, _ = require_hep()
        self.n_events = int(self.n_events)
        seen: set[str] = set()
        for kind in ("collections", "singletons", "scalars"):
            items = getattr(self, kind)
            for name, value in items.items():
                if not isinstance(name, str) or not name.isidentifier():
                    raise ValueError(f"object name {name!r} is not a valid identifier")
                if name in seen:
                    raise ValueError(f"object name {name!r} is used twice")
                if name in FUNCTIONS or name in CONSTANTS:
                    raise ValueError(f"object name {name!r} clashes with a function or constant of the "
                                     f"expression language")
                seen.add(name)
                if len(value) != self.n_events:
                    raise ValueError(f"{kind[:-1]} {name!r} has {len(value)} entries for {self.n_events} events")
                if kind == "scalars":
                    items[name] = np.asarray(value, dtype=np.float64)
                elif kind == "collections" and ak.Array(value).ndim != 2:
                    raise ValueError(f"collection {name!r} must be jagged (n_events * var), got {value.type}")

    @property
    def names(self) -> list[str]:
        """All names usable in expressions."""
        return [*self.collections, *self.singletons, *self.scalars]

    def __contains__(self, name: object) -> bool:
        return name in self.collections or name in self.singletons or name in self.scalars

    def __getitem__(self, name: str) -> Any:
        for d in (self.collections, self.singletons, self.scalars):
            if name in d:
                return d[name]
        raise KeyError(f"unknown object {name!r}; known: {self.names}")

    def __len__(self) -> int:
        return self.n_events

    def subset(self, index: Any) -> EventObjects:
        """Events selected by a boolean mask or integer index array."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (self.n_events,):
                raise ValueError(f"mask must have shape ({self.n_events},), got {idx.shape}")
            n = int(idx.sum())
        else:
            n = int(idx.size)
        return EventObjects(
            n, {k: v[idx] for k, v in self.collections.items()}, {k: v[idx] for k, v in self.singletons.items()},
            {k: v[idx] for k, v in self.scalars.items()})

    @classmethod
    def concatenate(cls, parts: Sequence[EventObjects]) -> EventObjects:
        """Concatenate events of several containers with the same object names."""
        ak, _ = require_hep()
        parts = list(parts)
        if not parts:
            raise ValueError("concatenate needs at least one EventObjects")
        first = parts[0]
        for p in parts[1:]:
            if p.names != first.names:
                raise ValueError(f"cannot concatenate EventObjects with names {p.names} and {first.names}")
        return cls(
            sum(p.n_events for p in parts),
            {k: ak.concatenate([p.collections[k] for p in parts]) for k in first.collections},
            {k: ak.concatenate([p.singletons[k] for p in parts]) for k in first.singletons},
            {k: np.concatenate([p.scalars[k] for p in parts]) for k in first.scalars})

    def with_multiplicities(self, aliases: Mapping[str, str] | None = None) -> EventObjects:
        """Add scalars ``n_<collection>`` (and aliases such as ``njets`` -> ``j``) with the object counts."""
        ak, _ = require_hep()
        scalars = dict(self.scalars)
        for name, coll in self.collections.items():
            key = f"n_{name}"
            if key not in self:
                scalars[key] = ak.to_numpy(ak.num(coll, axis=1)).astype(np.float64)
        for alias, coll_name in (aliases or {}).items():
            if coll_name in self.collections and alias not in self:
                scalars[alias] = ak.to_numpy(ak.num(self.collections[coll_name], axis=1)).astype(np.float64)
        return EventObjects(self.n_events, dict(self.collections), dict(self.singletons), scalars)


# ---------------------------------------------------------------------------------------------------------------
# Parsing and validation
# ---------------------------------------------------------------------------------------------------------------
_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Call, ast.Attribute, ast.Subscript,
    ast.Name, ast.Load, ast.Constant, ast.IfExp, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)


class Expression:
    """A parsed, validated expression; evaluate it with :meth:`evaluate`.

    Parameters
    ----------
    source : str
        The expression text.

    Raises
    ------
    ExpressionError
        On a syntax error or a disallowed construct, naming the expression.
    """

    def __init__(self, source: str) -> None:
        if not isinstance(source, str):
            raise TypeError(f"expression must be a string, got {type(source).__name__}")
        self.source = source
        if len(source) > MAX_EXPRESSION_LENGTH:
            raise ExpressionError(f"expression {source[:60]!r}... has {len(source)} characters; at most "
                                  f"{MAX_EXPRESSION_LENGTH} are allowed")
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as err:
            raise ExpressionError(f"syntax error in expression {source!r}: {err.msg} (column {err.offset})"
                                  ) from None
        except (RecursionError, MemoryError):
            raise ExpressionError(f"expression {source[:60]!r} is nested too deeply") from None
        self._tree = tree
        self._names: set[str] = set()
        try:
            self._validate(tree)
            self._fold(tree.body)
        except RecursionError:
            raise self._fail("nested too deeply") from None

    @property
    def names(self) -> set[str]:
        """Object names (not functions or constants) referenced by the expression."""
        return set(self._names)

    def _fail(self, msg: str) -> ExpressionError:
        return ExpressionError(f"expression {self.source!r}: {msg}")

    def _validate(self, node: ast.AST) -> None:
        if not isinstance(node, _ALLOWED_NODES):
            raise self._fail(f"{type(node).__name__} is not allowed")
        if isinstance(node, (ast.MatMult, ast.BitAnd, ast.BitOr, ast.BitXor, ast.LShift, ast.RShift, ast.Invert,
                             ast.In, ast.NotIn, ast.Is, ast.IsNot)):
            raise self._fail(f"operator {type(node).__name__} is not allowed")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, bool)):
            raise self._fail(f"constant {node.value!r} is not allowed (only numbers)")
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                raise self._fail(f"attribute {node.attr!r} is not allowed")
        if isinstance(node, ast.Call):
            if node.keywords:
                raise self._fail("keyword arguments are not allowed")
            if any(isinstance(a, ast.Starred) for a in node.args):
                raise self._fail("starred arguments are not allowed")
            if isinstance(node.func, ast.Name):
                if node.func.id not in FUNCTIONS:
                    raise self._fail(f"function {node.func.id!r} is not allowed; allowed: {sorted(FUNCTIONS)}")
                for a in node.args:
                    self._validate(a)
                return
            if isinstance(node.func, ast.Attribute):
                if node.func.attr not in _VECTOR_METHODS:
                    raise self._fail(f"method {node.func.attr!r} is not allowed; allowed: {sorted(_VECTOR_METHODS)}")
                self._validate(node.func.value)
                for a in node.args:
                    self._validate(a)
                return
            raise self._fail("only calls of named functions or vector methods are allowed")
        if isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise self._fail(f"name {node.id!r} is not allowed")
            if node.id in FUNCTIONS:
                raise self._fail(f"function {node.id!r} used without calling it")
            if node.id not in CONSTANTS:
                self._names.add(node.id)
        for child in ast.iter_child_nodes(node):
            self._validate(child)

    def _fold(self, node: ast.AST) -> float | None:
        """Value of a constant (sub)expression in float64 arithmetic, ``None`` if it depends on the event.

        Every node is visited once, so the cost is linear in the expression's size; a constant part that
        overflows (``9**9**9``), divides by zero or turns complex is an error here, at parse time. Evaluation
        uses the same float arithmetic (:meth:`_Interpreter.visit_Constant`), never Python's unbounded integers.
        """
        values = {id(child): self._fold(child) for child in ast.iter_child_nodes(node)}
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return CONSTANTS.get(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = values[id(node.operand)]
            return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
        if isinstance(node, ast.BinOp):
            left, right = values[id(node.left)], values[id(node.right)]
            if left is None or right is None:
                return None
            try:
                out = _BINOPS[type(node.op)](left, right)
            except OverflowError:
                raise self._fail(f"the constant {ast.unparse(node)!r} overflows float64 (exponent too large)"
                                 ) from None
            except ZeroDivisionError:
                raise self._fail(f"the constant {ast.unparse(node)!r} divides by zero") from None
            if isinstance(out, complex):
                raise self._fail(f"the constant {ast.unparse(node)!r} is complex") from None
            return out
        return None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    # -- evaluation ------------------------------------------------------------------------------------------
    def evaluate_raw(self, objects: EventObjects) -> Any:
        """Evaluate to an awkward/numpy array or a number, with missing entries (``None``) left in place."""
        ak, _ = require_hep()
        missing = sorted(n for n in self._names if n not in objects)
        if missing:
            raise self._fail(f"unknown names {missing}; available objects: {objects.names}, constants: "
                             f"{sorted(CONSTANTS)}")
        with np.errstate(all="ignore"):
            try:
                return _Interpreter(self, objects, ak).visit(self._tree.body)
            except ExpressionError:
                raise
            except Exception as err:  # awkward/vector errors: report with the expression
                raise self._fail(f"evaluation failed: {type(err).__name__}: {err}") from err

    def evaluate(self, objects: EventObjects, default: float = math.nan, dtype: Any = np.float64) -> np.ndarray:
        """Evaluate for all events.

        Parameters
        ----------
        objects : EventObjects
        default : float
            Value for events where the expression refers to a missing object.
        dtype : numpy dtype
            Output dtype (float64 for observables, bool for cuts).

        Returns
        -------
        ndarray, shape (n_events,)
        """
        ak, _ = require_hep()
        value = self.evaluate_raw(objects)
        return _to_numpy(value, objects.n_events, default, dtype, self, ak)


def parse_expression(source: str | Expression) -> Expression:
    """Parse and validate ``source`` (returned unchanged if already an :class:`Expression`)."""
    return source if isinstance(source, Expression) else Expression(source)


def _is_record(value: Any, ak: Any) -> bool:
    return isinstance(value, ak.Array) and bool(ak.fields(value))


def _depth(value: Any, ak: Any) -> int:
    """0 for numbers, 1 for one value per event, 2 for a list per event."""
    if isinstance(value, ak.Array):
        return value.ndim
    return np.ndim(value)


def _to_numpy(value: Any, n_events: int, default: float, dtype: Any, expr: Expression, ak: Any) -> np.ndarray:
    if isinstance(value, ak.Array):
        if _is_record(value, ak):
            raise expr._fail("evaluates to a vector/object, not a number; use an attribute such as .pt or .m")
        if value.ndim != 1:
            raise expr._fail("evaluates to a list per event; select an element ([0]) or reduce it with "
                             "len/sum/min/max/any/all")
        value = ak.fill_none(value, default)
        try:
            out = ak.to_numpy(value)
        except ValueError as err:
            raise expr._fail(f"cannot convert the result to numbers: {err}") from None
        if np.ma.isMaskedArray(out):  # pragma: no cover - fill_none removes the mask
            out = out.filled(default)
        out = np.asarray(out)
    else:
        out = np.asarray(value)
        if out.ndim == 0:
            out = np.full(n_events, out.item())
    if out.shape != (n_events,):
        raise expr._fail(f"result has shape {out.shape}, expected ({n_events},)")
    if dtype is bool or np.dtype(dtype) == np.bool_:
        if out.dtype.kind == "f":
            return np.where(np.isnan(out), False, out != 0)
        return out.astype(bool)
    return out.astype(dtype)


class _Interpreter:
    """Walks a validated AST, applying each node to whole-event arrays."""

    def __init__(self, expr: Expression, objects: EventObjects, ak: Any) -> None:
        self.expr = expr
        self.objects = objects
        self.ak = ak

    def visit(self, node: ast.AST) -> Any:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:  # pragma: no cover - excluded by validation
            raise self.expr._fail(f"{type(node).__name__} is not allowed")
        return method(node)

    def visit_Constant(self, node: ast.Constant) -> Any:
        # numbers are float64: Python's unbounded integers would let 9**9**9 run for hours
        return node.value if isinstance(node.value, bool) else float(node.value)

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        return self.objects[node.id]

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        return _BINOPS[type(node.op)](left, right)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.visit(node.operand)
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return value
        if isinstance(node.op, ast.Not):
            return np.logical_not(value)
        raise self.expr._fail(f"unary operator {type(node.op).__name__} is not allowed")  # pragma: no cover

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        values = [self._as_bool(self.visit(v)) for v in node.values]
        out = values[0]
        for v in values[1:]:
            out = np.logical_and(out, v) if isinstance(node.op, ast.And) else np.logical_or(out, v)
        return out

    def _as_bool(self, value: Any) -> Any:
        if isinstance(value, (bool, np.bool_)):
            return value
        if isinstance(value, self.ak.Array):
            return value if str(value.type).endswith("bool") else value != 0
        arr = np.asarray(value)
        return arr if arr.dtype == bool else arr != 0

    def visit_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        out = None
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = self.visit(comp)
            res = _CMPOPS[type(op)](left, right)
            out = res if out is None else np.logical_and(out, res)
            left = right
        return out

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self._where(self.visit(node.test), self.visit(node.body), self.visit(node.orelse))

    def _where(self, cond: Any, a: Any, b: Any) -> Any:
        ak = self.ak
        if any(isinstance(v, ak.Array) for v in (cond, a, b)):
            return ak.where(cond, a, b)
        return np.where(cond, a, b)

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        value = self.visit(node.value)
        if not _is_record(value, self.ak):
            raise self.expr._fail(f"attribute {node.attr!r} requested from something that is not an object "
                                  f"(in {ast.unparse(node)!r})")
        extra = set(self.ak.fields(value)) - {"pt", "eta", "phi", "mass", "px", "py", "pz", "E", "x", "y", "z", "t",
                                              "tau", "rho", "energy", "M"}
        if node.attr not in _VECTOR_ATTRIBUTES and node.attr not in extra:
            raise self.expr._fail(f"attribute {node.attr!r} is not allowed; allowed: {sorted(_VECTOR_ATTRIBUTES)} "
                                  f"and the object fields {sorted(extra)}")
        return getattr(value, node.attr)

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        ak = self.ak
        base = self.visit(node.value)
        if not isinstance(base, ak.Array) or base.ndim != 2:
            raise self.expr._fail(f"only collections (lists of objects per event) can be indexed, in "
                                  f"{ast.unparse(node)!r}")
        if isinstance(node.slice, ast.Slice):
            raise self.expr._fail(f"slices are not allowed in {ast.unparse(node)!r}; use an integer index")
        index = self.visit(node.slice)
        if isinstance(index, (bool, np.bool_)):
            raise self.expr._fail(f"index must be an integer or a per-object condition in {ast.unparse(node)!r}")
        if isinstance(index, (int, np.integer)):
            return _element(base, int(index), ak)
        if isinstance(index, float) and index.is_integer():
            return _element(base, int(index), ak)
        if isinstance(index, ak.Array) and index.ndim == 2 and str(index.type).endswith("bool"):
            return base[ak.fill_none(index, False)]
        raise self.expr._fail(f"index of {ast.unparse(node.value)!r} must be a constant integer or a per-object "
                              f"condition such as j[j.pt > 30]")

    def visit_Call(self, node: ast.Call) -> Any:
        ak = self.ak
        if isinstance(node.func, ast.Attribute):
            obj = self.visit(node.func.value)
            if not _is_record(obj, ak):
                raise self.expr._fail(f"method {node.func.attr!r} called on something that is not an object")
            args = [self.visit(a) for a in node.args]
            if len(args) != 1:
                raise self.expr._fail(f"method {node.func.attr!r} takes exactly one argument, got {len(args)}")
            if not _is_record(args[0], ak):
                raise self.expr._fail(f"the argument of {node.func.attr!r} must be an object")
            return getattr(obj, node.func.attr)(args[0])
        name = node.func.id  # type: ignore[attr-defined]
        args = [self.visit(a) for a in node.args]
        if name in _ELEMENTWISE:
            self._nargs(name, args, 1)
            return _ELEMENTWISE[name](args[0])
        if name in _BINARY_FUNCTIONS:
            self._nargs(name, args, 2)
            return _BINARY_FUNCTIONS[name](args[0], args[1])
        if name == "where":
            self._nargs(name, args, 3)
            return self._where(self._as_bool(args[0]), args[1], args[2])
        if name in ("min", "max") and len(args) >= 2:
            fn = np.minimum if name == "min" else np.maximum
            out = args[0]
            for a in args[1:]:
                out = fn(out, a)
            return out
        self._nargs(name, args, 1)
        value = args[0]
        if not isinstance(value, ak.Array) or value.ndim != 2:
            raise self.expr._fail(f"{name}() needs a list per event (a collection such as j or j.pt), in "
                                  f"{ast.unparse(node)!r}")
        if name == "len":
            return ak.values_astype(ak.num(value, axis=1), np.float64)
        if _is_record(value, ak):
            raise self.expr._fail(f"{name}() needs numbers, not objects; use e.g. {name}(j.pt)")
        if name == "sum":
            return ak.sum(value, axis=1)
        if name == "any":
            return ak.any(value, axis=1)
        if name == "all":
            return ak.all(value, axis=1)
        return (ak.min if name == "min" else ak.max)(value, axis=1)  # None for empty lists -> default

    def _nargs(self, name: str, args: list[Any], n: int) -> None:
        if len(args) != n:
            raise self.expr._fail(f"{name}() takes {n} argument(s), got {len(args)}")


def _element(coll: Any, k: int, ak: Any) -> Any:
    """Element ``k`` (negative counts from the end) of every event's list; missing where the list is too short."""
    if k >= 0:
        return ak.firsts(coll[:, k:k + 1], axis=1)
    stop = k + 1 if k + 1 != 0 else None
    out = ak.firsts(coll[:, k:stop], axis=1)
    return ak.mask(out, ak.num(coll, axis=1) >= -k)


# ---------------------------------------------------------------------------------------------------------------
# Observables
# ---------------------------------------------------------------------------------------------------------------
class Observable:
    """A named observable: an expression or a callable, with a default for events lacking an object.

    Parameters
    ----------
    name : str
        Observable name (column name of ``EventSet.x``).
    definition : str or callable
        Expression (see the module docstring) or ``f(objects: EventObjects) -> array (n_events,)``.
    default : float
        Value where an object is missing (index out of range, empty ``min``/``max``). NaN by default; readers
        drop events whose observables are not finite.
    """

    def __init__(self, name: str, definition: str | Callable[[EventObjects], Any], default: float = math.nan
                 ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"observable name must be a non-empty string, got {name!r}")
        self.name = name
        self.default = float(default)
        if isinstance(definition, (str, Expression)):
            self.expression: Expression | None = parse_expression(definition)
            self.function: Callable[[EventObjects], Any] | None = None
        elif callable(definition):
            self.expression = None
            self.function = definition
        else:
            raise TypeError(f"observable {name!r}: definition must be a string expression or a callable, got "
                            f"{type(definition).__name__}")

    @property
    def definition(self) -> str:
        """Text description of the definition (the expression, or the callable's qualified name)."""
        if self.expression is not None:
            return self.expression.source
        fn = self.function
        return f"<callable {getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}>"

    def evaluate(self, objects: EventObjects) -> np.ndarray:
        """Values for all events, float64 ``(n_events,)``."""
        if self.expression is not None:
            try:
                return self.expression.evaluate(objects, default=self.default)
            except ExpressionError as err:
                raise ExpressionError(f"observable {self.name!r}: {err}") from None
        try:
            raw = self.function(objects)  # type: ignore[misc]
        except Exception as err:
            raise ValueError(f"observable {self.name!r}: callable {self.definition} failed: "
                             f"{type(err).__name__}: {err}") from err
        ak, _ = require_hep()
        if isinstance(raw, ak.Array):
            if raw.ndim != 1 or ak.fields(raw):
                raise ValueError(f"observable {self.name!r}: callable must return one number per event, got "
                                 f"{raw.type}")
            raw = ak.to_numpy(ak.fill_none(raw, self.default))
        out = np.asarray(raw, dtype=np.float64)
        if out.shape != (objects.n_events,):
            raise ValueError(f"observable {self.name!r}: callable returned shape {out.shape}, expected "
                             f"({objects.n_events},)")
        return out

    def __repr__(self) -> str:
        return f"Observable({self.name!r}, {self.definition!r}, default={self.default})"


#: Keys of the mapping form of an observable definition, ``{expression: "a[0].pt", default: 0.0}``.
OBSERVABLE_KEYS = ("expression", "default")


def as_observables(observables: Iterable[Observable | tuple] | Mapping[str, Any]) -> list[Observable]:
    """Normalise observables given as :class:`Observable` objects, ``(name, definition[, default])`` tuples or a
    ``{name: definition}`` mapping, where a definition is an expression, a callable or a mapping
    ``{"expression": ..., "default": ...}`` (the YAML form of an observable with a default for events that lack
    the object it refers to)."""
    items = observables.items() if isinstance(observables, Mapping) else observables
    out = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Mapping):
            name, spec = item
            unknown = set(spec) - set(OBSERVABLE_KEYS)
            if unknown or "expression" not in spec:
                raise ValueError(f"observable {name!r}: a mapping definition needs 'expression' and may have "
                                 f"'default'; got keys {sorted(spec)}")
            try:
                default = float(spec.get("default", math.nan))
            except (TypeError, ValueError):
                raise ValueError(f"observable {name!r}: default must be a number, got {spec['default']!r}") from None
            out.append(Observable(name, spec["expression"], default))
        elif isinstance(item, Observable):
            out.append(item)
        elif isinstance(item, tuple) and 2 <= len(item) <= 3:
            out.append(Observable(*item))
        else:
            raise TypeError(f"cannot interpret {item!r} as an observable; use Observable(name, definition)")
    names = [o.name for o in out]
    if len(set(names)) != len(names):
        raise ValueError(f"observable names must be unique, got {names}")
    return out


def evaluate_observables(observables: Sequence[Observable], objects: EventObjects) -> np.ndarray:
    """Evaluate several observables, float64 ``(n_events, n_observables)``."""
    if not observables:
        return np.zeros((objects.n_events, 0))
    return np.stack([o.evaluate(objects) for o in observables], axis=1)
