"""runtime.common.branches on graphs written as data: a chain with residual blocks in it (nested, identity or with a
shortcut of ops, either operand order) is found along the data flow, whatever order the ops are listed in; any
other graph is refused naming the op."""

import pytest

from runtime.common.branches import Block, Graph, chain
from runtime.common.imported import ImportRefused


def graph(inputs: dict[str, list[str]]) -> Graph:
    """Ops by name -> the ops whose results they take ("x" is the input); `add*` ops are adds."""
    users = {name: [op for op, taken in inputs.items() if name in taken] for name in ["x", *inputs]}
    return Graph(users.__getitem__, inputs.__getitem__, lambda op: op.startswith("add"), lambda op: f"op {op!r}")


def test_a_chain_is_its_ops():
    assert chain(graph({"conv": ["x"], "relu": ["conv"], "fc": ["relu"]}), "x") == ["conv", "relu", "fc"]


def test_nested_blocks_and_a_projection_listed_out_of_order():
    """relu(x + (conv2 + body(conv1(x)))) then a projection block whose shortcut is listed first, as the generated
    forward computes it."""
    ops = {
        "proj": ["relu"],
        "proj_bn": ["proj"],
        "conv1": ["x"],
        "conv2": ["conv1"],
        "body": ["conv2"],
        "add_inner": ["body", "conv2"],
        "add_outer": ["add_inner", "x"],
        "relu": ["add_outer"],
        "conv3": ["relu"],
        "add_proj": ["conv3", "proj_bn"],
        "fc": ["add_proj"],
    }
    inner = Block(["body"], [], "add_inner")
    outer = Block(["conv1", "conv2", inner], [], "add_outer")
    assert chain(graph(ops), "x") == [outer, "relu", Block(["conv3"], ["proj", "proj_bn"], "add_proj"), "fc"]


def test_the_shortcut_is_the_empty_path_else_the_second_operand():
    identity_first = graph({"conv": ["x"], "add": ["x", "conv"]})
    assert chain(identity_first, "x") == [Block(["conv"], [], "add")]
    ops = graph({"a": ["x"], "b": ["x"], "b2": ["b"], "add": ["b2", "a"]})
    assert chain(ops, "x") == [Block(["b", "b2"], ["a"], "add")]


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ({"a": ["x"], "b": ["x"], "c": ["x"]}, r"op 'c': its input also feeds 2 other ops"),
        ({"a": ["x"], "b": ["x"], "a2": ["a"], "add": ["a", "a2"]}, r"op 'a': the two paths from its input do not"),
        ({"a": ["x"], "b": ["x"], "cat": ["a", "b"]}, r"op 'cat': it combines 2 results"),
        ({"add": ["x", "x"]}, r"op 'add': it adds a result to one that does not fork beside it"),
        ({"a": ["x"], "b": ["a"], "add": ["x", "x"], "c": ["b", "add"]}, r"op 'c': it combines 2 results"),
    ],
    ids=["three users", "paths that do not meet", "concatenation", "x + x", "a second input"],
)
def test_other_graphs_are_refused_naming_the_op(ops, message):
    with pytest.raises(ImportRefused, match=message):
        chain(graph(ops), "x")


def test_ops_named_by_equal_ints_that_are_not_one_object():
    """A reader may name its ops by index (the Keras reader does), and ints above 256 are equal without being one
    object: ops are matched by value."""

    def fresh(number: int) -> int:
        return int(str(number))  # a new int object on each call

    inputs = {fresh(1000): [fresh(999)], fresh(1001): [fresh(1000)], fresh(1002): [fresh(1001), fresh(999)]}
    inputs[fresh(1003)] = [fresh(1002)]
    users = {op: [fresh(user) for user, taken in inputs.items() if op in taken] for op in [999, *inputs]}
    found = chain(Graph(users.__getitem__, inputs.__getitem__, lambda op: op == 1002, str), fresh(999))
    assert found == [Block([1000, 1001], [], 1002), 1003]
