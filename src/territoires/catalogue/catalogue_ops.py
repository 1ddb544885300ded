"""Catalogue operations called by the CLI and the UI (each returns a French summary)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from territoires import config
from territoires.catalogue import export, funding, importing, model, validation
from territoires.catalogue.auth import CLI_USER
from territoires.catalogue.storage import Store
from territoires.errors import (
    ConfigError,
    ImportRefusedError,
    SourceError,
    TerritoiresError,
)

_NO_LAYERS = ("Attention : couches territoriales non construites, codes de territoire non "
              "vérifiés (lancez « territoires data build »).")

_EXTENSIONS = {".xlsx": "xlsx", ".zip": "csv", ".csv": "csv", "": "csv",
               ".geojson": "geojson", ".json": "geojson", ".gpkg": "gpkg"}


def _territory_index() -> tuple[Any | None, Any | None, str | None]:
    """(layers, index, warning): the reference layers and their index, or a warning."""
    from territoires.pipeline import layers as layers_mod

    try:
        built = layers_mod.load_layers()
    except TerritoiresError:
        return None, None, _NO_LAYERS
    try:
        from territoires.pipeline.territories import TerritoryIndex

        return built, TerritoryIndex.from_layers(built), None
    except NotImplementedError:
        return built, None, _NO_LAYERS


def _store(url: str) -> Store:
    store = Store(url)
    store.create_or_upgrade()
    return store


def open_catalogue(url: str | None = None, include_national: bool = True) -> model.Catalogue:
    """The catalogue stored at ``url`` (default :func:`config.database_url`), schema created
    or upgraded if needed."""
    store = _store(url or config.database_url())
    try:
        return store.load_catalogue(include_national=include_national)
    finally:
        store.dispose()


def _refuse(problems: list, what: str) -> ImportRefusedError:
    n = len(problems)
    return ImportRefusedError(
        problems,
        summary=f"{what} refusé : {n} problème{'s' if n > 1 else ''} ; rien n'a été écrit",
    )


def seed(seeds_dir: Path, url: str) -> str:
    """Load the seed fiches of ``seeds_dir`` into the database: only those not there yet
    (with their funding lines, and the unattached lines not there yet). A fiche already in
    the catalogue is left as it is, even if it differs from its seed file (it may have been
    edited in the app since: a seed never reverts it); the summary says how many were left,
    and names those that differ. Idempotent."""
    from territoires.catalogue.seeds import load_seed_dir

    catalogue = load_seed_dir(Path(seeds_dir))
    _layers, index, warning = _territory_index()
    problems = validation.validate(catalogue, index, file=str(seeds_dir))
    if problems:
        raise _refuse(problems, f"Chargement des fiches de {seeds_dir}")
    store = _store(url)
    try:
        problems = validation.national_conflicts(catalogue, _national_funding_ids(store),
                                                 file=str(seeds_dir))
        if problems:
            raise _refuse(problems, f"Chargement des fiches de {seeds_dir}")
        fund = catalogue.funding
        loose = fund[fund["initiative_id"].map(validation.is_missing)]
        ids = [str(i) for i in catalogue.initiatives["id"]]
        present, present_funding = _present_ids(store, ids, [str(i) for i in loose["id"]])
        kept = [i for i in ids if i in present]
        missing = [i for i in ids if i not in present]
        new = catalogue.subset(missing)
        loose = loose[~loose["id"].astype(str).isin(present_funding)]
        new.funding = pd.concat([new.funding, loose]) if len(loose) else new.funding
        # absent at the read above: refused (not overwritten) if created in between
        report = store.upsert(new, expected_versions=dict.fromkeys(missing),
                              source=str(seeds_dir))
        differ = (list(store.upsert(catalogue.subset(kept), dry_run=True).changed_versions)
                  if kept else [])
    finally:
        store.dispose()
    lines = [f"Fiches chargées depuis {seeds_dir} : {len(catalogue)} fiche(s).",
             f"Initiatives : {report.inserted} ajoutée(s), {len(kept)} déjà présente(s) "
             f"laissée(s) telle(s) quelle(s). Financements : {report.funding_inserted} "
             f"ligne(s) ajoutée(s), {report.funding_replaced} remplacée(s)."]
    if differ:
        names = ", ".join(f"« {i} »" for i in differ[:10])
        more = f" et {len(differ) - 10} autre(s)" if len(differ) > 10 else ""
        lines.append(f"{len(differ)} fiche(s) déjà présente(s) diffère(nt) de leur fichier, "
                     "non remplacée(s) pour ne pas effacer ce qui a été publié depuis dans "
                     f"l'application : {names}{more}.")
    if warning:
        lines.append(warning)
    return "\n".join(lines)


def _present_ids(store: Store, initiative_ids: list[str],
                 funding_ids: list[str]) -> tuple[set[str], set[str]]:
    """(those of ``initiative_ids``, those of ``funding_ids``) stored at ``store``."""
    import sqlalchemy as sa

    ini, fund = store.t["initiatives"], store.t["funding"]
    with store.engine.connect() as conn:
        return ({str(r[0]) for r in conn.execute(
                    sa.select(ini.c.id).where(ini.c.id.in_(initiative_ids)))},
                {str(r[0]) for r in conn.execute(
                    sa.select(fund.c.id).where(fund.c.id.in_(funding_ids)))})


def _national_funding_ids(store: Store) -> set[str]:
    """Ids of the national funding lines (source ``national:…``) stored at ``store``."""
    import sqlalchemy as sa

    fund = store.t["funding"]
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(fund.c.id).where(fund.c.source.startswith("national:")))
        return {str(r[0]) for r in rows}


def import_file(path: Path, url: str, dry_run: bool = False) -> str:
    """Import an exchange workbook or CSV set: read, validate everything, then upsert in one
    transaction, or raise :class:`ImportRefusedError` listing every problem (nothing
    written). With ``dry_run`` only the check is done. The same path as the Importer page
    (:mod:`territoires.catalogue.importing`), acting as the command line's user."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"Fichier introuvable : {path}")
    _layers, index, warning = _territory_index()
    store = Store(url)
    try:
        plan = importing.plan_import(path, store, index, create=not dry_run)
        if not plan.ok:
            raise _refuse(plan.problems, f"Import de « {path.name} »")
        counts = ", ".join(f"{n} ligne(s) « {sheet} »" for sheet, n in plan.counts().items())
        assert plan.report is not None
        if dry_run:
            lines = [f"Vérification réussie pour « {path.name} » : {counts}.",
                     f"{plan.report.describe()} Rien n'a été écrit (--dry-run)."]
        else:
            lines = [f"Import de « {path.name} » réussi : {counts}.",
                     importing.apply_import(store, CLI_USER, plan)]
        if warning:
            lines.append(warning)
        return "\n".join(lines)
    finally:
        store.dispose()


def export_file(
    path: Path,
    url: str,
    fmt: str | None = None,
    include_private: bool = False,
    include_national_funding: bool = False,
) -> str:
    """Export the whole catalogue to ``path`` (format from ``fmt`` or the extension).

    ``csv`` writes a zip when ``path`` ends in ``.zip``, else the CSV files into the folder
    ``path``."""
    path = Path(path)
    fmt = fmt or _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"Format d'export inconnu pour « {path.name} » : précisez --format "
                          "(csv, xlsx, geojson, gpkg).")
    store = _store(url)
    try:
        catalogue = store.load_catalogue(include_national=include_national_funding)
    finally:
        store.dispose()
    layers = index = None
    if fmt in ("geojson", "gpkg"):
        layers, index, _warning = _territory_index()
    data = export.export_bytes(catalogue, fmt, layers=layers, index=index,
                                 include_private=include_private)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv" and path.suffix.lower() not in (".zip",):
        folder = path if path.suffix == "" else path.with_suffix("")
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            zf.extractall(folder)
        target = folder
    else:
        path.write_bytes(data)
        target = path
    private = " (avec e-mails de contact)" if include_private else ""
    return (f"Export {fmt} écrit dans {target}{private} : {len(catalogue.initiatives)} "
            f"initiative(s), {len(catalogue.funding)} ligne(s) de financement.")


def _funding_folder(mirror: Path | None) -> Path:
    candidates = [mirror] if mirror else []
    candidates += [config.cache_dir() / "mirror", config.cache_dir()]
    for folder in candidates:
        if folder is not None and funding.funding_files(Path(folder)):
            return Path(folder)
    raise SourceError(
        "Fichiers adultes-relais / FONJEP introuvables (cherchés dans : "
        + ", ".join(str(c) for c in candidates if c is not None)
        + "). Lancez « territoires data fetch » ou indiquez --mirror."
    )


def load_funding(url: str, mirror: Path | None, only_if_empty: bool = False) -> str:
    """Load the national adultes-relais and FONJEP lines (replacing the previous national
    lines in one transaction); returns counts and totals per year."""
    store = _store(url)
    try:
        if only_if_empty:
            already = store.counts()["funding_national"]
            if already:
                return (f"Financements nationaux déjà chargés ({already} lignes) ; "
                        "« territoires catalogue load-funding » pour les recharger.")
        folder = _funding_folder(mirror)
        _layers, index, warning = _territory_index()
        df = funding.read_national_funding(folder, index)
        n = store.replace_funding_source(funding.SOURCE_PREFIX, df)
    finally:
        store.dispose()
    loc = funding.location_counts(df)
    lines = [
        f"Financements nationaux chargés depuis {folder} : {n} lignes "
        f"({loc['contrat_ville']} par contrat de ville, {loc['departement']} rattachées au "
        f"département faute de contrat, {loc['none']} sans localisation).",
    ]
    if "unknown_territories" in df.attrs:
        lines.append(f"Codes de contrat de ville absents des couches : "
                     f"{df.attrs['unknown_territories']} ligne(s).")
    totals = funding.funding_totals(df)
    for year, group in totals.groupby("year"):
        parts = ", ".join(
            f"{_scheme_label(s)} {_eur(a)} ({n_} postes)"
            for s, a, n_ in zip(group["scheme"], group["amount_eur"], group["lines"],
                                strict=True)
        )
        lines.append(f"  {year} : {parts}")
    if warning:
        lines.append(warning)
    return "\n".join(lines)


def _scheme_label(code: str) -> str:
    from territoires.vocab import SCHEMES

    return SCHEMES.label_of(code)


def _eur(amount: float) -> str:
    return f"{amount:,.0f} €".replace(",", "\u202f")
