"""The one error a bad spec raises: it names the file, the line and the field."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SpecError(Exception):
    """A spec that cannot be built, located as `file:line: field: message`."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
