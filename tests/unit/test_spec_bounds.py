"""Unit tier: a spec file is bounded before it is read whole, and its document while it is parsed.

Each adversarial text is parsed in a child process that does nothing else, so its peak memory is the parse's own; a
child that runs past the subprocess timeout fails the test (a generous bound: the parses take milliseconds).
"""

import json
import subprocess
import sys

import pytest

from dsl import SpecError
from dsl.document import MAX_DEPTH, MAX_NODES
from dsl.loader import MAX_SPEC_BYTES, read_spec_text
from tests.conftest import REPO

MB = 1_000_000
# name -> Python expression of a text just under the file bound, each built to pass one bound as late as it can.
TEXTS = {
    "a flat list": "'[' + '0,' * 499_000 + ']'",
    "nested flow lists": "'[' * 999_000",
    "nested block lists": "''.join(' ' * i + '- \\n' for i in range(1400))",
    "nested block mappings": "''.join(' ' * i + f'k{i}:\\n' for i in range(1400))",
    "many keys": "''.join(f'k{i}: 1\\n' for i in range(99_000))",
    "aliases of one list": "'a: &a [1]\\nb: [' + '*a,' * 330_000 + ']'",
    "one long scalar": "'name: ' + 'a' * 999_000",
    "blank lines": "'\\n' * 999_000",
}
# The peak is Linux's VmHWM: getrusage's ru_maxrss would carry over the peak of the pytest process that started it.
CHILD = """
import json, sys
from dsl import SpecError
from dsl.loader import parse_spec
def peak_kb():
    status = open("/proc/self/status").read().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
text = eval(sys.argv[1])
before = peak_kb()
try:
    parse_spec(text, "spec.yaml")
    message = None
except SpecError as error:
    message = str(error)
print(json.dumps({"message": message, "bytes": len(text), "before_kb": before, "peak_kb": peak_kb()}))
"""


@pytest.mark.parametrize("expression", TEXTS.values(), ids=TEXTS.keys())
def test_an_adversarial_document_is_refused_within_the_bounds(expression):
    result = subprocess.run(
        [sys.executable, "-c", CHILD, expression], capture_output=True, text=True, cwd=REPO, timeout=60, check=True
    )
    figures = json.loads(result.stdout)
    assert figures["bytes"] < MAX_SPEC_BYTES
    assert figures["message"] is not None, "refused"
    assert figures["peak_kb"] < 200 * 1024, figures
    assert figures["peak_kb"] - figures["before_kb"] < 100 * 1024, figures  # the parse itself


def test_the_refusals_say_which_bound():
    with pytest.raises(SpecError, match=f"more than {MAX_NODES:,} YAML nodes$"):
        read_and_parse("[" + "0, " * MAX_NODES + "]")
    with pytest.raises(SpecError, match=f"nests more than {MAX_DEPTH} levels deep$"):
        read_and_parse("a:\n" + "".join(" " * i + "- \n" for i in range(1, MAX_DEPTH + 2)))
    with pytest.raises(SpecError, match="a spec is a mapping"):  # the bound itself passes to the next check
        read_and_parse("[" + "0, " * (MAX_NODES - 1) + "]")
    with pytest.raises(SpecError) as expanded:
        read_and_parse("a: &a [" + "1, " * 99 + "1]\nb: [" + "*a, " * 200 + "]")
    assert expanded.value.message.endswith("through its aliases"), "only aliases are blamed for aliases"


def read_and_parse(text: str) -> None:
    from dsl import parse_spec

    parse_spec(text, "spec.yaml")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_an_endless_file_is_refused_unread(device):
    with pytest.raises(SpecError, match=f"larger than {MAX_SPEC_BYTES:,} bytes .*--max-spec-bytes"):
        read_spec_text(device)


def test_the_size_bound_is_raised_by_a_flag(tmp_path):
    spec = (REPO / "specs" / "mlp.yaml").read_text()
    big = tmp_path / "big.yaml"
    big.write_text(spec + "#" + "x" * MB + "\n")
    out = tmp_path / "out"

    def build(*flags: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "compilers.cli", *flags, "build", str(big), "--out", str(out)]
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)

    refused = build()
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "larger than 1,000,000 bytes" in refused.stderr and not out.exists()
    built = build("--max-spec-bytes", str(2 * MB))
    assert built.returncode == 0, built.stderr
    assert (out / "mlp" / "torch_model.py").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["big.yaml", "out"], "no .ruff_cache/ or anything else"
    zero = build("--max-spec-bytes", "0")
    assert zero.returncode == 2 and zero.stderr == "fmnist-dsl: argument --max-spec-bytes: 0 is not at least 1\n"
