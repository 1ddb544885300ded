"""Catalogue imports, one path for the command line and the Importer page.

1. :func:`plan_import` reads the file within the bounds of :mod:`territoires.catalogue.reading`,
   validates it with the rules of :mod:`territoires.catalogue.validation` (the forms' rules too),
   and
   compares it with the published catalogue without writing anything: what would be added,
   changed, left as is.
2. :func:`apply_import` writes it, all or nothing. A moderator's (or the command line's)
   import is published at once, in one transaction (:meth:`Store.upsert`); a contributor's
   becomes one proposal per new or changed initiative in the moderation queue, also in one
   transaction. The role is checked here, not only in the page.

No lost update, at either step: a fiche whose ``version`` column is older than the published
version and whose content differs is refused by :func:`plan_import` (a stale export would
revert what was published since). A moderator's :func:`apply_import` writes only if every
initiative of the file, those found unchanged included, is still at the version
:func:`plan_import` saw (still absent for a new one), checked under the write lock; else
:class:`~territoires.errors.ConflictError` and nothing is written: the file must be checked
again. A contributor's proposals carry the versions seen, checked likewise
(:func:`~territoires.catalogue.moderation.submit_batch`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from territoires.catalogue import model, moderation, reading, validation
from territoires.catalogue.auth import User, require
from territoires.catalogue.storage import Store, UpsertReport
from territoires.errors import ImportRefusedError, Problem

#: Largest file the Importer page accepts (bytes; the command line allows
#: :data:`territoires.catalogue.reading.MAX_FILE_BYTES`).
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
#: A contributor's import: at most this many initiatives (each becomes a proposal).
MAX_PROPOSALS = 200

Progress = Callable[[float, str], None]


def _no_progress(_fraction: float, _text: str) -> None:
    return None


@dataclass
class ImportPlan:
    """What an import would do: the catalogue read, every problem, and the comparison with
    the published catalogue (``report``, None when there are problems)."""

    file: str
    catalogue: model.Catalogue
    problems: list[Problem] = field(default_factory=list)
    report: UpsertReport | None = None

    @property
    def ok(self) -> bool:
        """True when the import can be written."""
        return not self.problems and self.report is not None

    def counts(self) -> dict[str, int]:
        """Rows read per table (French sheet names)."""
        return {model.TABLE_LABELS[name]: len(df)
                for name, df in self.catalogue.tables().items()}

    def summary(self) -> str:
        """French summary of what would be written (or why not)."""
        if self.problems:
            n = len(self.problems)
            return (f"Import de « {self.file} » impossible : {n} problème"
                    f"{'s' if n > 1 else ''} ; rien ne sera écrit.")
        assert self.report is not None
        return f"« {self.file} » est valide. {self.report.describe()}"


def _ids(store: Store) -> tuple[set[str], set[str]]:
    """(published initiative ids, ids of the national funding lines)."""
    ini, fund = store.t["initiatives"], store.t["funding"]

    def read(conn: sa.Connection) -> tuple[set[str], set[str]]:
        known = {r[0] for r in conn.execute(sa.select(ini.c.id))}
        national = {r[0] for r in conn.execute(
            sa.select(fund.c.id).where(fund.c.source.startswith("national:")))}
        return known, national

    return store.transaction("la lecture des identifiants du catalogue", read)


def _fresh_report(catalogue: model.Catalogue) -> UpsertReport:
    """What an import into an empty catalogue does: everything is added."""
    ids = [str(x) for x in catalogue.initiatives["id"]]
    return UpsertReport(inserted=len(ids), funding_inserted=len(catalogue.funding),
                        added_ids=ids)


def plan_import(path: Path, store: Store, index: Any | None, *, file_name: str | None = None,
                create: bool = True, progress: Progress = _no_progress) -> ImportPlan:
    """Read and check ``path`` (XLSX, CSV, folder or zip of CSV) against the published
    catalogue of ``store``; no catalogue content is written. ``index`` checks territory codes
    (None skips that check). ``file_name`` is the name shown in messages (an upload's own
    name). ``create``: create or upgrade the database schema if needed; without it, a missing
    database counts as an empty catalogue and is not created."""
    name = file_name or Path(path).name
    progress(0.05, f"Lecture de « {name} »…")
    catalogue, problems = reading.read_exchange(Path(path))
    problems = [p if p.file else _with_file(p, name) for p in problems]
    progress(0.35, "Vérification des valeurs…")
    empty = not store.database_exists() or store.schema_version() == 0
    if create or not empty:
        store.create_or_upgrade()
        empty = False
    known, national = (set(), set()) if empty else _ids(store)
    problems += validation.validate(catalogue, index, file=name, known_initiatives=known)
    problems += validation.national_conflicts(catalogue, national, file=name)
    plan = ImportPlan(name, catalogue, problems)
    if problems:
        progress(1.0, "Vérification terminée : des problèmes empêchent l'import.")
        return plan
    progress(0.7, "Comparaison avec le catalogue publié…")
    report = _fresh_report(catalogue) if empty else store.upsert(catalogue, dry_run=True)
    plan.problems = _stale_versions(catalogue, report.changed_versions, name)
    if plan.problems:
        progress(1.0, "Vérification terminée : des problèmes empêchent l'import.")
        return plan
    plan.report = report
    progress(1.0, "Vérification terminée.")
    return plan


def _stale_versions(catalogue: model.Catalogue, published: dict[str, int],
                    file: str) -> list[Problem]:
    """A problem per changed initiative whose ``version`` cell is older than its
    ``published`` version: the file was exported before that version was published, and
    importing it would revert it. An empty cell (a file not made from an export) is not
    checked."""
    df = catalogue.initiatives
    if not published or "version" not in df.columns or not len(df):
        return []
    sheet = df.attrs.get("sheet") or model.TABLE_LABELS["initiatives"]
    raw = df.attrs.get("raw") or validation.RawCells()
    lines = ([int(i) for i in df.index] if df.attrs.get("line_index")
             else list(range(2, len(df) + 2)))
    problems = []
    for line, iid, cell in zip(lines, df["id"].astype(object), df["version"].astype(object),
                               strict=True):
        current = published.get(str(iid))
        version = None if validation.is_missing(cell) else validation.parse_int(cell)
        if current is None or version is None or version >= current:
            continue
        problems.append(Problem(
            f"fiche « {iid} » exportée en version {version}, mais la version {current} a été "
            "publiée depuis : l'importer effacerait ces changements. Exportez de nouveau la "
            "fiche publiée et reportez-y les vôtres (ou videz cette case pour remplacer "
            "sciemment la version publiée)", file=file, sheet=sheet, line=line,
            column="version", value=raw.typed("version", line, cell)))
    return problems


def _with_file(problem: Problem, name: str) -> Problem:
    return Problem(problem.message, file=name, sheet=problem.sheet, line=problem.line,
                   column=problem.column, value=problem.value)


def expected_versions(report: UpsertReport) -> dict[str, int | None]:
    """The published version each initiative of a checked file had (None: absent), for
    :meth:`Store.upsert`'s ``expected_versions``."""
    expected: dict[str, int | None] = dict.fromkeys(report.added_ids)
    expected.update(report.changed_versions)
    expected.update(report.unchanged_versions)
    return expected


def apply_import(store: Store, user: User, plan: ImportPlan, *, comment: str | None = None,
                 progress: Progress = _no_progress) -> str:
    """Write a checked import, all or nothing; French summary. Moderators (and the command
    line) publish it; contributors get one proposal per new or changed initiative. Refused
    (nothing written) if the plan has problems or the user may not contribute, and with
    :class:`~territoires.errors.ConflictError` if a fiche of the file was published, changed
    or deleted since :func:`plan_import` checked it."""
    require(user, "contributeur")
    if not plan.ok:
        raise ImportRefusedError(plan.problems, summary=plan.summary())
    progress(0.1, "Écriture dans le catalogue…")
    assert plan.report is not None
    if user.at_least("moderateur"):
        report = store.upsert(plan.catalogue, author=user.key or "import", comment=comment,
                              expected_versions=expected_versions(plan.report),
                              source=plan.file)
        progress(1.0, "Import terminé.")
        return f"Import de « {plan.file} » publié. {report.describe()}"
    unattached = plan.catalogue.funding["initiative_id"].map(validation.is_missing)
    if unattached.any():
        lines = [int(i) for i in plan.catalogue.funding.index[unattached]][:20]
        raise ImportRefusedError([Problem(
            "une ligne de financement sans initiative ne peut être importée que par un "
            "modérateur", file=plan.file, sheet=model.TABLE_LABELS["funding"], line=line,
            column="initiative_id") for line in lines],
            summary=f"Import de « {plan.file} » refusé ; rien n'a été écrit")
    targets = [(iid, None) for iid in plan.report.added_ids] + list(
        plan.report.changed_versions.items())
    if len(targets) > MAX_PROPOSALS:
        raise ImportRefusedError([Problem(
            f"{len(targets)} fiches nouvelles ou modifiées : un contributeur en propose au plus "
            f"{MAX_PROPOSALS} à la fois ; découpez le fichier, ou demandez à un modérateur",
            file=plan.file)], summary=f"Import de « {plan.file} » refusé ; rien n'a été écrit")
    ids = moderation.submit_batch(store, user, [
        (plan.catalogue.subset([iid]), base) for iid, base in targets], comment=comment,
        file=plan.file)
    progress(1.0, "Propositions enregistrées.")
    n = len(ids)
    unchanged = plan.report.unchanged
    return (f"Import de « {plan.file} » : {n} proposition{'s' if n > 1 else ''} déposée"
            f"{'s' if n > 1 else ''} dans la file de modération ({len(plan.report.added_ids)} "
            f"nouvelle(s) fiche(s), {len(plan.report.changed_versions)} modification(s) ; "
            f"{unchanged} fiche(s) inchangée(s) ignorée(s)). Elles seront visibles une fois "
            "publiées par un modérateur.")
