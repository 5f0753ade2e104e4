"""Load untrusted YAML with bounds on size, depth and alias expansion.

PyYAML's ``safe_load`` refuses Python objects but happily returns a "billion laughs"
document: aliases share nodes, so the load is cheap and the blow-up happens later, in
whatever walks the result (our interpolation). Here composition counts every node as if
aliases were expanded, and stops as soon as the budget is spent, so such a file fails in
microseconds with almost no memory. Scalars follow the YAML 1.2 core schema, like
Compose itself: ``yes`` stays a string and ``22:22`` is not the base-60 number 1342.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode
from yaml.parser import Parser
from yaml.reader import Reader, ReaderError
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

try:
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover
    CParser = None

from apps.compose.errors import ComposeError
from apps.compose.limits import DEFAULT_LIMITS, Limits

_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _TAG + "merge"


_INT = re.compile(r"^[-+]?(?:0o[0-7]+|0x[0-9a-fA-F]+|[0-9]+)$")


class _CoreResolver(BaseResolver):
    """YAML 1.2 core schema resolution (what Compose's Go YAML library does)."""


_CoreResolver.add_implicit_resolver(
    _TAG + "bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_CoreResolver.add_implicit_resolver(
    _TAG + "null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_CoreResolver.add_implicit_resolver(
    _TAG + "int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_CoreResolver.add_implicit_resolver(
    _TAG + "float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
_CoreResolver.add_implicit_resolver(_MERGE_TAG, re.compile(r"^<<$"), ["<"])


class _PlainConstructor(SafeConstructor):
    """Only plain data: null, bool, int, float, str, lists and mappings; any other tag fails."""

    yaml_constructors: dict = {}

    def construct_core_bool(self, node: ScalarNode) -> bool:
        """true/false only; PyYAML's own raises KeyError on ``!!bool maybe``."""
        value = self.construct_scalar(node).lower()
        if value not in ("true", "false"):
            raise ConstructorError(None, None, f"invalid boolean {value!r}", node.start_mark)
        return value == "true"

    def construct_core_int(self, node: ScalarNode) -> int:
        """Decimal, 0o octal and 0x hex, as in YAML 1.2 (PyYAML's own is YAML 1.1)."""
        value = self.construct_scalar(node).replace("_", "")
        if not _INT.match(value):
            raise ConstructorError(None, None, f"invalid integer {value!r}", node.start_mark)
        sign, digits = (-1, value[1:]) if value[0] == "-" else (1, value.lstrip("+"))
        if digits.startswith("0o"):
            return sign * int(digits[2:], 8)
        if digits.startswith("0x"):
            return sign * int(digits[2:], 16)
        return sign * int(digits, 10)

    def construct_core_float(self, node: ScalarNode) -> float:
        """Floats including .inf and .nan, which Python's float() spells differently."""
        value = self.construct_scalar(node).lower()
        if value.endswith(".inf"):
            return float(value.replace(".inf", "inf"))
        return float("nan") if value == ".nan" else float(value)


for _name, _method in {
    "null": SafeConstructor.construct_yaml_null,
    "bool": _PlainConstructor.construct_core_bool,
    "int": _PlainConstructor.construct_core_int,
    "float": _PlainConstructor.construct_core_float,
    "str": SafeConstructor.construct_yaml_str,
    "seq": SafeConstructor.construct_yaml_seq,
    "map": SafeConstructor.construct_yaml_map,
}.items():
    _PlainConstructor.add_constructor(_TAG + _name, _method)
_PlainConstructor.add_constructor(None, SafeConstructor.construct_undefined)


class _BoundedComposer(Composer):
    """Composer that charges every node, alias expansions included, against the limits."""

    def __init__(self, limits: Limits) -> None:
        super().__init__()
        self._limits = limits
        self._count = 0
        self._heights: list[int] = [0]
        self._stats: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            self._charge_alias(self.peek_event())
            return super().compose_node(parent, index)
        if len(self._heights) > self._limits.max_depth:
            self._fail(f"nesting deeper than {self._limits.max_depth} levels")
        start = self._count
        self._charge(1)
        self._heights.append(0)
        node = super().compose_node(parent, index)
        height = self._heights.pop() + 1
        self._heights[-1] = max(self._heights[-1], height)
        self._stats[id(node)] = (self._count - start, height)
        return node

    def compose_mapping_node(self, anchor: Any) -> MappingNode:
        node = super().compose_mapping_node(anchor)
        self._check_keys(node)
        return node

    def _charge_alias(self, event: Any) -> None:
        """An alias costs the whole subtree it points to, and adds its height."""
        target = self.anchors.get(event.anchor)
        if target is None:
            return  # PyYAML reports the undefined alias itself
        if id(target) not in self._stats:
            self._fail("an alias refers to the node that contains it (recursive alias)")
        size, height = self._stats[id(target)]
        if len(self._heights) - 1 + height > self._limits.max_depth:
            self._fail(f"nesting deeper than {self._limits.max_depth} levels (through an alias)")
        self._charge(size)
        self._heights[-1] = max(self._heights[-1], height)

    def _charge(self, amount: int) -> None:
        self._count += amount
        if self._count > self._limits.max_nodes:
            self._fail(
                f"the document expands to more than {self._limits.max_nodes} nodes "
                "(too many aliases or elements)"
            )

    def _check_keys(self, node: MappingNode) -> None:
        """Keys are plain scalars and appear once: a repeated key must not silently win."""
        seen = set()
        for key_node, _value in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if not isinstance(key_node, ScalarNode):
                raise ConstructorError(
                    None, None, "mapping keys must be plain scalars", key_node.start_mark
                )
            key = self.construct_object(key_node)
            if key in seen:
                raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)

    def _fail(self, message: str) -> None:
        mark = self.peek_event().start_mark
        raise ComposeError(f"invalid YAML at line {mark.line + 1}: {message}")


class _PureLoader(Reader, Scanner, Parser, _BoundedComposer, _PlainConstructor, _CoreResolver):
    """PyYAML's pure-Python reader, scanner and parser with our composer and constructor."""

    def __init__(self, stream: str, limits: Limits) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _BoundedComposer.__init__(self, limits)
        _PlainConstructor.__init__(self)
        _CoreResolver.__init__(self)


if CParser is not None:

    class _FastLoader(_BoundedComposer, _PlainConstructor, _CoreResolver, CParser):
        """libyaml scans and parses (about 5x faster); composition stays ours, in Python,
        because that is where the limits are enforced. Our composer comes first in the
        MRO so its methods replace the C composer entirely."""

        def __init__(self, stream: str, limits: Limits) -> None:
            CParser.__init__(self, stream)
            _BoundedComposer.__init__(self, limits)
            _PlainConstructor.__init__(self)
            _CoreResolver.__init__(self)

    _SafeLoader: type = _FastLoader
else:  # pragma: no cover - libyaml is present in our images
    _SafeLoader = _PureLoader


def safe_load(data: str | bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Parse one YAML document into plain Python data, or raise ComposeError."""
    text = _decode(data, limits)
    loader = None
    try:
        loader = _SafeLoader(text, limits)
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        raise ComposeError(_marked_message(exc)) from None
    except ReaderError as exc:
        raise ComposeError(
            f"the compose file contains a character YAML does not allow at position {exc.position}"
        ) from None
    except yaml.YAMLError as exc:
        raise ComposeError(f"invalid YAML: {_short(str(exc))}") from None
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as exc:
        raise ComposeError(f"invalid YAML: {_short(str(exc))}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _decode(data: str | bytes, limits: Limits) -> str:
    """Size first (before any work), then strict UTF-8: binary junk is refused here."""
    if isinstance(data, str):
        if len(data) > limits.max_bytes:
            raise ComposeError(_too_big(limits))
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:
            raise ComposeError("the compose file is not valid UTF-8 text") from None
    if not isinstance(data, bytes):
        raise ComposeError("the compose file must be text")
    if len(data) > limits.max_bytes:
        raise ComposeError(_too_big(limits))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ComposeError("the compose file is not valid UTF-8 text") from None


def _too_big(limits: Limits) -> str:
    return f"the compose file is larger than {limits.max_bytes // 1024} KiB"


def _marked_message(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's own text quotes the offending line; keep only the problem and position."""
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "syntax error"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"invalid YAML{where}: {_short(problem)}"


def _short(text: str, size: int = 200) -> str:
    return text if len(text) <= size else text[: size - 3] + "..."
