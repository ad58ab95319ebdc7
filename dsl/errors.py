"""The one error a bad spec raises: it names the file, the line and the field."""

from dataclasses import dataclass


# Not frozen: Python assigns an exception's __traceback__ (contextlib does on the way out of a `with`); eq=False
# keeps exceptions hashable, as Python's own are.
@dataclass(eq=False)
class SpecError(Exception):
    """A spec that cannot be built, located as `file:line: field: message`."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
