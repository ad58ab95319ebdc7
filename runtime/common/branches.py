"""The shape of a source model's graph as the DSL can say it: a chain of ops, with residual blocks in it.

A residual block is a value that feeds two paths joined by an add: one path is the block, the other nothing (an
identity shortcut) or the shortcut's ops (a projection, which the reader checks). Blocks nest. Any other graph (a
value feeding three ops, two paths that meet elsewhere or not at all, an op taking two results that is not the join)
is an ImportRefused naming the op. The readers give their graph as functions of their own node objects, so this
knows nothing of any framework.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runtime.common.imported import refuse

BRANCHES = "a model with branches the DSL cannot say: it reads chains and residual blocks (a value feeding two paths "
BRANCHES += "joined by an add, one of them nothing or a projection)"


@dataclass
class Block:
    """A residual block found in the graph: its block's and its shortcut's items, and the add that joins them."""

    block: list
    shortcut: list
    join: object


@dataclass
class Graph:
    """A source graph as the readers give it: each op's users and tensor inputs, which ops are adds of two
    results, and how to name an op in a message."""

    users: Callable[[object], list]
    inputs: Callable[[object], list]
    is_join: Callable[[object], bool]
    where: Callable[[object], str]


def chain(graph: Graph, start) -> list:
    """The items (ops and Blocks) from `start` (the input, not an item) to the op whose result nothing uses."""
    items, _, join = _path(graph, start)
    if join is not None:
        raise refuse(graph.where(join), f"it adds a result to one that does not fork beside it: {BRANCHES}")
    return items


def _path(graph: Graph, value) -> tuple[list, object, object]:
    """The items after `value` up to the add it reaches, if any: (items, the last op or `value`, that add)."""
    items = []
    while True:
        users = graph.users(value)
        if not users:
            return items, value, None
        if len(users) == 1 and graph.is_join(users[0]):
            return items, value, users[0]
        if len(users) == 1:
            _single_input(graph, users[0])
            items.append(users[0])
            value = users[0]
            continue
        if len(users) > 2:
            raise refuse(graph.where(users[2]), f"its input also feeds {len(users) - 1} other ops: {BRANCHES}")
        items.append(_block(graph, value, users))
        value = items[-1].join


def _single_input(graph: Graph, op) -> None:
    if len(graph.inputs(op)) != 1:
        raise refuse(graph.where(op), f"it combines {len(graph.inputs(op))} results: {BRANCHES}")


def _branch(graph: Graph, value, user) -> tuple[list, object, object]:
    if graph.is_join(user):
        return [], value, user
    _single_input(graph, user)
    items, end, join = _path(graph, user)
    return [user, *items], end, join


def _block(graph: Graph, value, users: list) -> Block:
    """The residual block of the two paths from `value`: an empty path is the shortcut, else the add's second
    operand (`block(x) + shortcut(x)`); the reader swaps two paths when only the first is a projection."""
    paths = [_branch(graph, value, user) for user in users]
    join = paths[0][2]
    # Ops are compared by value, not identity: a reader may name them by index (ints above 256 are not shared).
    ends = [end for _, end, _ in paths]
    if join is None or paths[1][2] != join or list(graph.inputs(join)) not in (ends, ends[::-1]):
        where = graph.where(join if join is not None else users[0])
        raise refuse(where, f"the two paths from its input do not meet in one add: {BRANCHES}")
    if not paths[0][0] and not paths[1][0]:
        raise refuse(graph.where(join), "it adds a result to itself: not a residual block")
    first = graph.inputs(join)[0]
    paths.sort(key=lambda path: (not path[0], path[1] != first))
    return Block(paths[0][0], paths[1][0], join)
