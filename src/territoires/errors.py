"""Exception hierarchy of Territoires.

Every error the user can cause or meet derives from :class:`TerritoiresError` and carries a
French message meant to be shown as is. Pages catch only this hierarchy.
"""

from __future__ import annotations

from dataclasses import dataclass


class TerritoiresError(Exception):
    """Base class: a problem explained in plain French for the user."""


class ConfigError(TerritoiresError):
    """A setting (environment variable, path, URL) is wrong."""


class SourceError(TerritoiresError):
    """A source file could not be fetched, or is not what it should be."""


class LayerError(TerritoiresError):
    """A reference layer could not be built or read (names file, layer, field and value)."""


class LayersMissingError(LayerError):
    """The reference layers have not been built yet."""


class StorageError(TerritoiresError):
    """The catalogue database could not be opened, created, upgraded or written."""


class UnknownTerritoryError(TerritoiresError):
    """A territory code does not exist in the reference layers."""


@dataclass(frozen=True)
class Problem:
    """One validation problem, located as precisely as the input allows."""

    message: str
    file: str | None = None
    sheet: str | None = None
    line: int | None = None
    column: str | None = None
    value: object | None = None

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(f"fichier « {self.file} »")
        if self.sheet:
            where.append(f"feuille « {self.sheet} »")
        if self.line is not None:
            where.append(f"ligne {self.line}")
        if self.column:
            where.append(f"colonne « {self.column} »")
        prefix = ", ".join(where)
        value = "" if self.value is None else f" (valeur : « {self.value} »)"
        return f"{prefix} : {self.message}{value}" if prefix else f"{self.message}{value}"


class ValidationError(TerritoiresError):
    """Input was refused; ``problems`` lists every problem found, not only the first."""

    def __init__(self, problems: list[Problem], summary: str | None = None) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        head = summary or f"{n} problème{'s' if n > 1 else ''} trouvé{'s' if n > 1 else ''}"
        detail = "\n".join(f"- {p}" for p in self.problems[:200])
        more = f"\n… et {n - 200} autres" if n > 200 else ""
        super().__init__(f"{head} :\n{detail}{more}" if n else head)


class ImportRefusedError(ValidationError):
    """A catalogue import was refused as a whole; nothing was written."""


class ExportError(TerritoiresError):
    """An export could not be produced."""


class PermissionDeniedError(TerritoiresError):
    """The user's role does not allow this action (checked in the core functions)."""


class ConflictError(TerritoiresError):
    """A write was refused because the fiche changed since the author opened it (no lost
    update), or because a proposal was already decided."""


class InputTooLargeError(ValidationError):
    """An input goes beyond one of the bounds of :mod:`territoires.catalogue.reading` (file size,
    uncompressed size, entries, rows, columns, cell length); nothing more was read."""
