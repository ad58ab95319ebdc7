"""Read YAML text into its node tree (for lines) and plain data, refusing what safe_load would let through silently.

Beyond yaml.safe_load: a key given twice in one mapping is an error (safe_load keeps the last one without a word), a
value that cannot be constructed (an integer of 5,000 digits, the 13th month) is located by its line instead of
escaping as a bare ValueError, and aliases may neither refer to themselves nor expand the document beyond
MAX_NODES nodes (a few nested aliases turn a short file into billions of values to validate).

The bounds are checked while the document is composed, node by node, so an adversarial text is refused as soon as it
passes one, not after PyYAML has built all of it: MAX_NODES nodes (the largest example spec has about 150) and
MAX_DEPTH levels of nesting (a spec needs 5). Together with the loader's bound on the file's size, no input takes
more than a fraction of a second or a few tens of MB to refuse.
"""

import re
from typing import Any

import yaml

from dsl.errors import SpecError

MAX_NODES = 10_000
MAX_DEPTH = 32


if yaml.__with_libyaml__:
    # libyaml's scanner and parser: a megabyte of blank lines takes them 10 ms and PyYAML's own a second. The
    # composer stays PyYAML's, in Python, so that the bounds below are checked node by node.
    from yaml._yaml import CParser as EventSource
else:

    class EventSource(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
        """PyYAML's own scanner and parser, where PyYAML was installed without libyaml."""

        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


class StrictLoader(yaml.composer.Composer, EventSource, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """yaml.SafeLoader's parts (no Python tags) whose constructors' failures carry the node's line.

    It also reads `1e-8` as a float, as YAML 1.2 and JSON do (YAML 1.1 wants `1.0e-8` and would hand the spec the
    string "1e-8"): the normalised spec.json, which json.dumps writes that way, is read with this loader too.
    """

    def __init__(self, stream: str) -> None:
        EventSource.__init__(self, stream)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as error:
            problem = str(error).split(";")[0]  # Python's advice on its own digit limit is not for spec authors
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None

    def compose_document(self) -> yaml.Node:
        self.nodes_composed, self.depth = 0, 0
        return super().compose_document()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """Compose one node, refusing the document the moment it passes MAX_NODES nodes or MAX_DEPTH levels."""
        mark = self.peek_event().start_mark
        self.nodes_composed += 1
        if self.nodes_composed > MAX_NODES:
            raise DocumentBoundError(mark, f"the document has more than {MAX_NODES:,} YAML nodes")
        if self.depth >= MAX_DEPTH:
            raise DocumentBoundError(mark, f"the document nests more than {MAX_DEPTH} levels deep")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class DocumentBoundError(Exception):
    """A document past one of the bounds, found while composing it."""

    def __init__(self, mark: yaml.Mark, message: str) -> None:
        super().__init__(message)
        self.line, self.message = mark.line + 1, message


StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def compose(text: str, filename: str) -> tuple[yaml.Node | None, Any]:
    """The document's root node and its data; raises SpecError naming the line of the first problem."""
    try:
        return _compose(text, filename)
    except yaml.YAMLError as error:
        raise SpecError(filename, _error_line(text, error), "", f"malformed YAML: {_first_line(error)}") from None
    except DocumentBoundError as error:
        raise SpecError(filename, error.line, "", error.message) from None


def _compose(text: str, filename: str) -> tuple[yaml.Node | None, Any]:
    loader = StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_nodes(root, filename)
        return root, loader.construct_document(root)
    finally:
        loader.dispose()


def _error_line(text: str, error: yaml.YAMLError) -> int | None:
    mark = getattr(error, "problem_mark", None)
    if mark is not None:
        return mark.line + 1
    position = getattr(error, "position", None)  # the reader's errors count characters, not lines
    return None if position is None else text.count("\n", 0, position) + 1


def _first_line(error: yaml.YAMLError) -> str:
    parts = [getattr(error, "context", None), getattr(error, "problem", None)]
    return (", ".join(part for part in parts if part) or str(error)).splitlines()[0]


def _check_nodes(root: yaml.Node, filename: str) -> None:
    sizes: dict[int, int] = {}
    if _expanded_size(root, sizes, set(), filename, "") > MAX_NODES:
        message = f"the document expands to more than {MAX_NODES:,} YAML nodes through its aliases"
        raise SpecError(filename, root.start_mark.line + 1, "", message)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int], filename: str, path: str) -> int:
    """The node count once aliases are expanded (memoised, so linear in the text); checks keys on the way."""
    if id(node) in open_nodes:
        raise SpecError(filename, node.start_mark.line + 1, path, "an alias that contains itself")
    if id(node) not in sizes:
        open_nodes.add(id(node))
        sizes[id(node)] = 1 + sum(
            _expanded_size(child, sizes, open_nodes, filename, child_path)
            for child_path, child in _children(node, filename, path)
        )
        open_nodes.discard(id(node))
    return sizes[id(node)]


def _children(node: yaml.Node, filename: str, path: str) -> list[tuple[str, yaml.Node]]:
    if isinstance(node, yaml.SequenceNode):
        return [(f"{path}[{index}]", child) for index, child in enumerate(node.value)]
    if not isinstance(node, yaml.MappingNode):
        return []
    _check_duplicate_keys(node, filename, path)
    children = []
    for key, value in node.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else "?"
        children += [(path, key), (f"{path}.{name}" if path else name, value)]
    return children


def _check_duplicate_keys(node: yaml.MappingNode, filename: str, path: str) -> None:
    """A key given twice in one mapping: the second one is reported, with the line of the first."""
    first_lines: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        line = key.start_mark.line + 1
        if (key.tag, key.value) in first_lines:
            field = f"{path}.{key.value}" if path else key.value
            message = f"duplicate key {key.value!r} (first given on line {first_lines[key.tag, key.value]})"
            raise SpecError(filename, line, field, message)
        first_lines[key.tag, key.value] = line
