"""The method table is the one place that names methods and says how each is trained.

* every ratio estimator builds the loss its table row says (ratio term, score term), and a user subclass trains
  like its table ancestor;
* no module of the package other than :mod:`skminer.methods` spells a method's configuration name as a string
  constant (the grep criterion of the one-protocol issue), so code cannot branch on method names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import skminer
from skminer.methods import METHODS, method_for_class

PACKAGE = Path(skminer.__file__).parent

#: String constants equal to a method name that are allowed outside the table, with the reason.
ALLOWED = {
    # a documented, older spelling of ``mode="score"`` (a limit mode, not a method)
    ("inference/limits.py", "sally"),
}


@pytest.mark.parametrize("name", [n for n, row in METHODS.items() if row.ratio_loss is not None])
def test_ratio_estimators_train_their_table_row(name):
    row = METHODS[name]
    cls = row.load()
    est = cls()
    est.n_parameters_ = 2
    crit = est._build_criterion()
    assert crit.base == row.ratio_loss
    assert crit.uses_score == row.alpha
    assert crit.double == (row.family == "double_ratio")

    class UserVariant(cls):  # a user's subclass trains like its table ancestor
        pass

    assert method_for_class(UserVariant) is None
    assert method_for_class(UserVariant, inherited=True) is row
    assert UserVariant._method_row() is row


def test_only_the_table_names_methods():
    names = set(METHODS)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "methods.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                if (rel, node.value) not in ALLOWED:
                    found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert found == [], "method names outside skminer/methods.py (read the table instead):\n" + "\n".join(found)
