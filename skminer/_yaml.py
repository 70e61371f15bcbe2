"""A safe YAML loader for analysis configurations: bounded alias expansion, YAML 1.2 floats, traceable ints.

* Aliases: PyYAML shares aliased nodes, so a 0.7 KB file of nested aliases ("billion laughs") loads quickly and
  then expands to billions of objects when the configuration is hashed or copied. The composed node graph is
  measured first (each alias counted as often as it is expanded) and refused beyond :data:`MAX_EXPANDED_NODES`.
* Floats: YAML 1.1 (PyYAML) reads ``1e-3`` (no dot) as the *string* "1e-3"; here it is the float 0.001, as in
  YAML 1.2 and every other YAML library.
* Duplicate keys in one mapping are an error naming both lines (PyYAML silently keeps the last value, so
  ``seed: 1`` ... ``seed: 2`` or two ``training:`` sections would run an analysis nobody wrote). Keys brought in
  by a merge key (``<<: *defaults``) may be overridden, as YAML's merge specifies.
* Integers keep their source text (:class:`YamlInt`), so that names written unquoted (``1001:``, ``012``) can be
  turned back into the text the user wrote, or refused where YAML changed it (``012`` is the octal 10).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["YamlInt", "load_yaml", "MAX_EXPANDED_NODES"]

#: Largest number of YAML nodes a configuration may expand to (counting each alias as often as it is used).
#: A full analysis configuration has a few hundred; the limit only stops alias bombs.
MAX_EXPANDED_NODES = 100_000

_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class YamlInt(int):
    """An ``int`` read from YAML that remembers the text it was written as (``source``)."""

    source: str

    def __new__(cls, value: int, source: str) -> YamlInt:
        obj = super().__new__(cls, value)
        obj.source = source
        return obj

    def __reduce__(self) -> tuple[Any, ...]:  # copies and pickles are plain ints
        return (int, (int(self),))


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 exponent floats, source-tracking ints and no duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Refuse a key written twice in the same mapping (before merge keys are flattened)."""
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable key: PyYAML reports it below
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key!r} (first at line {first.start_mark.line + 1}); YAML would keep "
                        "only the last value: remove one", key_node.start_mark)
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> YamlInt:
    return YamlInt(yaml.SafeLoader.construct_yaml_int(loader, node), node.value)


_ConfigLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Number of nodes of ``root`` with every alias expanded (``limit + 1`` once past ``limit``).

    A recursive alias (a node containing itself) expands without end and counts as ``limit + 1``.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value))
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes[id(c)] for c in children))
            continue
        if any(id(c) in open_nodes or c is node for c in children):
            return limit + 1
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def load_yaml(text: str, source: str | Path = "<yaml>") -> Any:
    """Parse one YAML document safely (no Python objects), refusing alias expansion beyond a bound.

    Parameters
    ----------
    text : str
        The YAML document.
    source : str or Path
        File name for messages.

    Returns
    -------
    object
        The document (``None`` when empty); integers are :class:`YamlInt`.

    Raises
    ------
    yaml.YAMLError
        On a syntax error.
    ValueError
        If the aliases expand to more than :data:`MAX_EXPANDED_NODES` nodes (naming the file).
    """
    loader = _ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, MAX_EXPANDED_NODES)
        if size > MAX_EXPANDED_NODES:
            raise ValueError(f"{source}: YAML aliases expand to more than {MAX_EXPANDED_NODES} nodes; refusing to "
                             "load it (an alias bomb?). Write the repeated values out or use fewer nested aliases")
        return loader.construct_document(node)
    finally:
        loader.dispose()
