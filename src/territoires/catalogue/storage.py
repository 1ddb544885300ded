"""Catalogue database: the five tables of :mod:`territoires.catalogue.model`, versioned schema.

The database is SQLite (a file, created on first use) or PostgreSQL
(``postgresql+psycopg://…`` through ``TERRITOIRES_DATABASE_URL``). The schema is versioned:
table ``schema_version`` holds the version reached, and :data:`MIGRATIONS` lists the ordered
steps applied by :meth:`Store.create_or_upgrade`.

Storage choices:

- list columns (``themes``, ``publics``, ``alliance_levels``) are JSON text;
- child tables (organisations, territories, indicators) reference ``initiatives.id`` with
  ``ON DELETE CASCADE`` and keep their input order through a surrogate ``pk``;
- ``funding.initiative_id`` is a plain indexed column (no foreign key): national lines and
  lines of initiatives not (yet) in the catalogue live independently;
- ``funding.territory_level``/``territory_code`` may be null for the few national lines that
  carry no location at all (see :mod:`territoires.catalogue.funding`);
- timestamps are stored in UTC and returned tz-aware (UTC).

Schema v2 adds the contribution tables (see :mod:`territoires.catalogue.moderation`), beside the
five
published tables, which keep holding only published data:

- ``users``: role of each signed-in identity (key = lower-cased e-mail, or ``sub:…``);
- ``proposals``: contributions waiting for moderation (payload = JSON of the one-initiative
  rows of the five tables, ``base_version`` = published version the author started from);
- ``initiative_versions``: every published version of every initiative (JSON snapshot);
- ``audit_log``: who did what, when, on what;
- ``catalogue_revision``: one counter bumped in the same transaction by every write to the
  published tables (seed, import, funding load, publish, restore), so that caches of the
  catalogue (one per app process) can check it cheaply and reload when it moves.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from territoires.catalogue import model
from territoires.errors import ConflictError, StorageError

#: Latest schema version this code knows.
SCHEMA_VERSION = 3
#: Rows per INSERT batch.
BATCH_SIZE = 2000


def _metadata(schema: str | None) -> sa.MetaData:
    md = sa.MetaData(schema=schema)
    prefix = f"{schema}." if schema else ""
    sa.Table(
        "schema_version",
        md,
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("description", sa.Text),
    )
    text_cols = [
        "summary", "objectives", "actions", "results", "difficulties", "lessons", "outlook",
        "source_document", "source_sheet", "source_url", "contact_organisation",
        "contact_role", "contact_email",
    ]
    sa.Table(
        "initiatives",
        md,
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("scale", sa.String(40)),
        sa.Column("start_date", sa.Date),
        sa.Column("end_date", sa.Date),
        sa.Column("themes", sa.Text, nullable=False),
        sa.Column("publics", sa.Text, nullable=False),
        sa.Column("alliance_levels", sa.Text, nullable=False),
        sa.Column("maturity", sa.String(40), nullable=False),
        *[sa.Column(c, sa.Text) for c in text_cols],
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )

    def fk() -> sa.Column:
        return sa.Column(
            "initiative_id",
            sa.String(200),
            sa.ForeignKey(f"{prefix}initiatives.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )

    sa.Table(
        "organisations",
        md,
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        fk(),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("siret", sa.String(14)),
    )
    sa.Table(
        "territories",
        md,
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        fk(),
        sa.Column("level", sa.String(40), nullable=False),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Index("ix_territories_level_code", "level", "code"),
    )
    sa.Table(
        "indicators",
        md,
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        fk(),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("unit", sa.Text),
        sa.Column("year", sa.Integer),
    )
    sa.Table(
        "funding",
        md,
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("funder", sa.Text, nullable=False),
        sa.Column("funder_type", sa.String(40), nullable=False),
        sa.Column("scheme", sa.String(40), nullable=False),
        sa.Column("amount_eur", sa.Float, nullable=False),
        sa.Column("year_start", sa.Integer, nullable=False),
        sa.Column("year_end", sa.Integer, nullable=False),
        sa.Column("beneficiary", sa.Text),
        sa.Column("beneficiary_siret", sa.String(14)),
        sa.Column("territory_level", sa.String(40)),
        sa.Column("territory_code", sa.String(40)),
        sa.Column("initiative_id", sa.String(200), index=True),
        sa.Column("source", sa.Text),
        sa.Index("ix_funding_territory", "territory_level", "territory_code"),
        sa.Index("ix_funding_scheme_year", "scheme", "year_start"),
    )
    _contribution_tables(md)
    _report_tables(md)
    return md


#: The five published tables (schema v1).
V1_TABLES: tuple[str, ...] = ("initiatives", "organisations", "territories", "indicators",
                              "funding")
#: Tables added by schema v2 (contribution, moderation, history).
V2_TABLES: tuple[str, ...] = ("users", "proposals", "initiative_versions", "audit_log",
                              "catalogue_revision")


def _contribution_tables(md: sa.MetaData) -> None:
    ts = sa.DateTime(timezone=True)
    sa.Table(
        "users",
        md,
        sa.Column("key", sa.String(320), primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("granted_by", sa.String(320), nullable=False),
        sa.Column("granted_at", ts, nullable=False),
    )
    sa.Table(
        "proposals",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("initiative_id", sa.String(200), nullable=False, index=True),
        sa.Column("kind", sa.String(10), nullable=False),  # new | edit | restore
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("base_version", sa.Integer),
        sa.Column("author", sa.String(320), nullable=False, index=True),
        sa.Column("author_name", sa.Text),
        sa.Column("comment", sa.Text),
        sa.Column("status", sa.String(12), nullable=False, index=True),
        sa.Column("reason", sa.Text),
        sa.Column("moderator", sa.String(320)),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("decided_at", ts),
        sa.Column("published_version", sa.Integer),
    )
    sa.Table(
        "initiative_versions",
        md,
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("initiative_id", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("snapshot", sa.Text, nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),  # import | new | edit | restore…
        sa.Column("author", sa.String(320), nullable=False),
        sa.Column("moderator", sa.String(320)),
        sa.Column("published_at", ts, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("proposal_id", sa.Integer),
        sa.UniqueConstraint("initiative_id", "version", name="uq_initiative_version"),
    )
    sa.Table(
        "audit_log",
        md,
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", ts, nullable=False, index=True),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.Text),
        sa.Column("detail", sa.Text),
    )
    sa.Table(
        "catalogue_revision",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
    )


#: Tables added by schema v3 (error reports from readers).
V3_TABLES: tuple[str, ...] = ("error_reports",)


def _report_tables(md: sa.MetaData) -> None:
    ts = sa.DateTime(timezone=True)
    sa.Table(
        "error_reports",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("initiative_id", sa.String(200), nullable=False, index=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("email", sa.String(320)),
        # sha256 of the Streamlit session id: counts a session's reports, identifies no one
        sa.Column("session_hash", sa.String(64), nullable=False, index=True),
        sa.Column("created_at", ts, nullable=False, index=True),
        sa.Column("status", sa.String(10), nullable=False, index=True),  # open | closed
        sa.Column("closed_by", sa.String(320)),
        sa.Column("closed_at", ts),
        sa.Column("note", sa.Text),
    )


@dataclass(frozen=True)
class Migration:
    """One schema step: brings the database from ``version - 1`` to ``version``."""

    version: int
    description: str
    apply: Callable[[Connection, sa.MetaData], None]


def _migrate_v1(conn: Connection, md: sa.MetaData) -> None:
    """Create the five tables; on a pre-versioned ("v0") database, add missing columns."""
    insp = sa.inspect(conn)
    for table in md.sorted_tables:
        if table.name not in V1_TABLES:
            continue
        if not insp.has_table(table.name, schema=md.schema):
            table.create(conn)
            continue
        existing = {c["name"] for c in insp.get_columns(table.name, schema=md.schema)}
        for col in table.columns:
            if col.name in existing:
                continue
            ddl_type = col.type.compile(dialect=conn.dialect)
            default = _v0_default(table.name, col.name)
            clause = f" DEFAULT {default}" if default is not None else ""
            conn.execute(sa.text(
                f"ALTER TABLE {_qualified(md.schema, table.name, conn)} "
                f"ADD COLUMN {conn.dialect.identifier_preparer.quote(col.name)} "
                f"{ddl_type}{clause}"
            ))
        for index in table.indexes:
            names = {i["name"] for i in insp.get_indexes(table.name, schema=md.schema)}
            if index.name not in names:
                index.create(conn)


def _v0_default(table: str, column: str) -> str | None:
    if column in ("themes", "publics", "alliance_levels"):
        return "'[]'"
    if column == "version":
        return "1"
    if column in ("created_at", "updated_at"):
        return "CURRENT_TIMESTAMP"
    return None


def _qualified(schema: str | None, name: str, conn: Connection) -> str:
    q = conn.dialect.identifier_preparer.quote
    return f"{q(schema)}.{q(name)}" if schema else q(name)


def _tables(md: sa.MetaData) -> dict[str, sa.Table]:
    return {t.name: t for t in md.tables.values()}


def _migrate_v2(conn: Connection, md: sa.MetaData) -> None:
    """Create the contribution tables; keep every existing initiative as its first recorded
    version (author ``migration``) and start the catalogue revision at 1."""
    insp = sa.inspect(conn)
    t = _tables(md)
    for name in V2_TABLES:
        if not insp.has_table(name, schema=md.schema):
            t[name].create(conn)
    now = dt.datetime.now(dt.UTC)
    if conn.execute(sa.select(sa.func.count()).select_from(t["catalogue_revision"])).scalar():
        return
    conn.execute(t["catalogue_revision"].insert().values(id=1, revision=1, updated_at=now))
    ids = [r[0] for r in conn.execute(sa.select(t["initiatives"].c.id))]
    payloads = read_payloads(conn, t, ids)
    versions = {r[0]: r[1] for r in conn.execute(
        sa.select(t["initiatives"].c.id, t["initiatives"].c.version))}
    _insert(conn, t["initiative_versions"], [
        {"initiative_id": iid, "version": int(versions[iid] or 1),
         "snapshot": dump_payload(payload), "kind": "migration", "author": "migration",
         "moderator": None, "published_at": now, "proposal_id": None,
         "comment": "version présente lors du passage au schéma 2"}
        for iid, payload in payloads.items()
    ])


def _migrate_v3(conn: Connection, md: sa.MetaData) -> None:
    """Create the error-report table."""
    insp = sa.inspect(conn)
    t = _tables(md)
    for name in V3_TABLES:
        if not insp.has_table(name, schema=md.schema):
            t[name].create(conn)


#: Ordered schema migrations.
MIGRATIONS: list[Migration] = [
    Migration(1, "cinq tables du catalogue (initiatives, structures, territoires, "
                 "indicateurs, financements)", _migrate_v1),
    Migration(2, "contribution : rôles, propositions, versions publiées, journal, "
                 "révision du catalogue", _migrate_v2),
    Migration(3, "signalements d'erreurs sur les fiches", _migrate_v3),
]


@dataclass
class UpsertReport:
    """What :meth:`Store.upsert` did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    funding_inserted: int = 0
    funding_replaced: int = 0
    #: ids of the initiatives added and of those changed (with their published version)
    added_ids: list[str] = field(default_factory=list)
    changed_versions: dict[str, int] = field(default_factory=dict)
    #: ids of the initiatives left as they were, with their published version
    unchanged_versions: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """French summary."""
        return (
            f"Initiatives : {self.inserted} ajoutée(s), {self.updated} modifiée(s), "
            f"{self.unchanged} inchangée(s). Financements : {self.funding_inserted} "
            f"ligne(s) ajoutée(s), {self.funding_replaced} remplacée(s)."
        )


# ---------------------------------------------------------------------------- conversions


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        return bool(pd.isna(value)) if not isinstance(value, (list, tuple, dict)) else False
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str | None:
    if _is_missing(value):
        return None
    text = str(value)
    return text if text.strip() else None


def _date(value: Any) -> dt.date | None:
    if _is_missing(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, pd.Timestamp):
        return value.date()
    return dt.date.fromisoformat(str(value)[:10])


def _timestamp(value: Any) -> dt.datetime | None:
    if _is_missing(value):
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def _int(value: Any) -> int | None:
    return None if _is_missing(value) else int(value)


def _float(value: Any) -> float | None:
    return None if _is_missing(value) else float(value)


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [p.strip() for p in value.split(model.LIST_SEPARATOR.strip()) if p.strip()]
    if _is_missing(value):
        return []
    return [str(v) for v in value]


def _initiative_row(rec: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for col in model.INITIATIVE_COLUMNS:
        value = rec.get(col)
        if col in model.INITIATIVE_LIST_COLUMNS:
            row[col] = json.dumps(_list(value), ensure_ascii=False)
        elif col in ("start_date", "end_date"):
            row[col] = _date(value)
        elif col in ("created_at", "updated_at"):
            row[col] = _timestamp(value)
        elif col == "version":
            row[col] = _int(value)
        else:
            row[col] = _text(value)
    return row


def _child_row(table: str, rec: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for col in model.TABLE_COLUMNS[table]:
        value = rec.get(col)
        if col == "value":
            row[col] = _float(value)
        elif col == "year":
            row[col] = _int(value)
        else:
            row[col] = _text(value)
    return row


def _funding_row(rec: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for col in model.FUNDING_COLUMNS:
        value = rec.get(col)
        if col == "amount_eur":
            row[col] = _float(value)
        elif col in ("year_start", "year_end"):
            row[col] = _int(value)
        else:
            row[col] = _text(value)
    if row["year_end"] is None:
        row["year_end"] = row["year_start"]
    return row


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return df.astype(object).to_dict("records") if len(df) else []


def _canon_initiative(row: dict[str, Any], children: dict[str, list[dict]]) -> str:
    """Canonical JSON of an initiative's content (ignores created_at/updated_at/version)."""
    content = {
        k: (v.isoformat() if isinstance(v, dt.date) else v)
        for k, v in row.items()
        if k not in ("created_at", "updated_at", "version")
    }
    return json.dumps({"row": content, "children": children}, sort_keys=True, default=str)


def _children_content(rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [[r[c] for c in sorted(r) if c not in ("initiative_id", "pk")] for r in rows]


# ------------------------------------------------------------------------------- payloads
#
# A payload is the JSON form of the one-initiative rows of the five tables:
# ``{"initiatives": [row], "organisations": [...], "territories": [...], "indicators":
# [...], "funding": [...]}`` (dates as ISO text, list columns as lists, no surrogate keys).


def _json_value(value: Any) -> Any:
    if _is_missing(value):
        return None
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict, str)):
        return value.item()  # numpy scalar
    return value


def _payload_row(table: str, row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in model.TABLE_COLUMNS[table]:
        value = row.get(col)
        if table == "initiatives" and col in model.INITIATIVE_LIST_COLUMNS:
            out[col] = json.loads(value) if isinstance(value, str) else _list(value)
        elif col in ("created_at", "updated_at"):
            out[col] = _json_value(_timestamp(value))
        else:
            out[col] = _json_value(value)
    return out


def catalogue_payload(catalogue: model.Catalogue) -> dict[str, list[dict[str, Any]]]:
    """The JSON-ready payload of ``catalogue`` (normally one initiative)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, df in catalogue.tables().items():
        rows = []
        for rec in _records(df):
            if name == "initiatives":
                row = _initiative_row(rec)
            elif name == "funding":
                row = _funding_row(rec)
            else:
                row = _child_row(name, rec)
            rows.append(_payload_row(name, row))
        out[name] = rows
    return out


def payload_catalogue(payload: dict[str, list[dict[str, Any]]]) -> model.Catalogue:
    """The :class:`~territoires.catalogue.model.Catalogue` of a payload (inverse of
    :func:`catalogue_payload`); a missing ``version`` reads as 1."""
    tables: dict[str, list[dict]] = {}
    for name in model.TABLE_COLUMNS:
        rows = [dict(r) for r in payload.get(name, [])]
        if name == "initiatives":
            for r in rows:
                for col in model.INITIATIVE_LIST_COLUMNS:
                    r[col] = json.dumps(_list(r.get(col)), ensure_ascii=False)
                r["version"] = r.get("version") or 1
        tables[name] = rows
    return frames_to_catalogue(tables)


def dump_payload(payload: dict[str, list[dict[str, Any]]]) -> str:
    """Canonical JSON text of a payload."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)


def load_payload(text: str) -> dict[str, list[dict[str, Any]]]:
    """A payload read back from its JSON text."""
    data = json.loads(text)
    return {name: list(data.get(name) or []) for name in model.TABLE_COLUMNS}


def read_payloads(conn: Connection, t: dict[str, sa.Table],
                  ids: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Published payload of each initiative of ``ids`` found in the database (bulk reads)."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    ini = t["initiatives"]
    for chunk in _chunks(list(ids), 500):
        for r in conn.execute(sa.select(ini).where(ini.c.id.in_(chunk))):
            out[r.id] = {name: [] for name in model.TABLE_COLUMNS}
            out[r.id]["initiatives"].append(_payload_row("initiatives", dict(r._mapping)))
        for name in ("organisations", "territories", "indicators", "funding"):
            table = t[name]
            order = table.c.pk if name != "funding" else table.c.id
            query = sa.select(table).where(table.c.initiative_id.in_(chunk)).order_by(order)
            for r in conn.execute(query):
                if r.initiative_id in out:
                    out[r.initiative_id][name].append(_payload_row(name, dict(r._mapping)))
    return out


# ---------------------------------------------------------------------------------- store


class Store:
    """The catalogue database at ``url`` (SQLAlchemy URL).

    ``schema`` (PostgreSQL only) puts the tables in that schema (tests use a unique one).
    """

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise StorageError(f"Adresse de base de données invalide : « {url} »") from exc
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            db = parsed.database
            if db and db != ":memory:" and not db.startswith("file:"):
                try:
                    Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StorageError(
                        f"Impossible de créer le dossier de la base « {db} » : {exc}"
                    ) from exc
        try:
            self.engine: Engine = sa.create_engine(parsed, future=True)
        except Exception as exc:  # missing driver, bad options
            raise StorageError(
                f"Impossible d'ouvrir la base de données « {parsed.render_as_string()} » : {exc}"
            ) from exc
        if self.is_sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.md = _metadata(schema)
        self.t = self.md.tables if not schema else {
            name.split(".", 1)[1]: table for name, table in self.md.tables.items()
        }

    def database_exists(self) -> bool:
        """False only for a SQLite file that does not exist yet (never creates it)."""
        if not self.is_sqlite:
            return True
        db = sa.make_url(self.url).database
        if not db or db == ":memory:" or db.startswith("file:"):
            return True
        return Path(db).expanduser().exists()

    # ------------------------------------------------------------------ schema

    def _run(self, what: str, fn: Callable[[Connection], Any]) -> Any:
        """Run ``fn`` in one transaction, wrapping database errors."""
        try:
            with self.engine.begin() as conn:
                return fn(conn)
        except StorageError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise StorageError(
                f"Erreur de la base de données pendant {what} "
                f"({sa.make_url(self.url).render_as_string()}) : {detail}. "
                "Rien n'a été écrit."
            ) from exc

    def schema_version(self) -> int:
        """Version reached by the database (0 if never created)."""

        def read(conn: Connection) -> int:
            if not sa.inspect(conn).has_table("schema_version", schema=self.schema):
                return 0
            value = conn.execute(sa.select(sa.func.max(self.t["schema_version"].c.version)))
            return int(value.scalar() or 0)

        return self._run("la lecture de la version du schéma", read)

    def create_or_upgrade(self) -> int:
        """Create the schema or apply the missing migrations; return the version reached."""

        def upgrade(conn: Connection) -> int:
            if self.schema and conn.dialect.name == "postgresql":
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            version_table = self.t["schema_version"]
            if not sa.inspect(conn).has_table("schema_version", schema=self.schema):
                version_table.create(conn)
            current = int(
                conn.execute(sa.select(sa.func.max(version_table.c.version))).scalar() or 0
            )
            if current > SCHEMA_VERSION:
                raise StorageError(
                    f"La base de données est en version {current} du schéma, plus récente que "
                    f"celle de ce logiciel ({SCHEMA_VERSION}). Mettez Territoires à jour."
                )
            for migration in sorted(MIGRATIONS, key=lambda m: m.version):
                if migration.version <= current:
                    continue
                migration.apply(conn, self.md)
                conn.execute(version_table.insert().values(
                    version=migration.version,
                    applied_at=dt.datetime.now(dt.UTC),
                    description=migration.description,
                ))
                current = migration.version
            return current

        return self._run("la création ou la mise à jour du schéma", upgrade)

    def drop_all(self) -> None:
        """Drop every table (tests and resets)."""
        self._run("la suppression des tables", lambda conn: self.md.drop_all(conn))

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    # ------------------------------------------------------------------ reading

    def load_catalogue(self, include_national: bool = True) -> model.Catalogue:
        """The whole catalogue; national funding lines (source ``national:…``) optional."""

        def read(conn: Connection) -> model.Catalogue:
            self._require_schema(conn)

            def frame(query: sa.Select) -> pd.DataFrame:
                # rows as plain tuples into one frame (a dict per row: 0.5 s per 100,000
                # rows; SQLAlchemy rows themselves: pandas probes each for ``_fields``)
                result = conn.execute(query)
                columns = list(result.keys())
                return pd.DataFrame.from_records([tuple(r) for r in result], columns=columns)

            ini = self.t["initiatives"]
            tables: dict[str, pd.DataFrame] = {
                "initiatives": frame(sa.select(ini).order_by(ini.c.id))}
            for name in ("organisations", "territories", "indicators"):
                t = self.t[name]
                tables[name] = frame(sa.select(t).order_by(t.c.initiative_id, t.c.pk))
            fund = self.t["funding"]
            query = sa.select(fund).order_by(fund.c.id)
            if not include_national:
                query = query.where(
                    sa.or_(fund.c.source.is_(None), ~fund.c.source.startswith("national:"))
                )
            tables["funding"] = frame(query)
            return frames_to_catalogue(tables)

        return self._run("la lecture du catalogue", read)

    def counts(self) -> dict[str, int]:
        """Row count per table, plus ``funding_national`` (lines loaded from national data)."""

        def count(conn: Connection) -> dict[str, int]:
            self._require_schema(conn)
            out = {
                name: int(conn.execute(sa.select(sa.func.count()).select_from(self.t[name]))
                          .scalar() or 0)
                for name in model.TABLE_COLUMNS
            }
            fund = self.t["funding"]
            out["funding_national"] = int(conn.execute(
                sa.select(sa.func.count()).select_from(fund)
                .where(fund.c.source.startswith("national:"))
            ).scalar() or 0)
            return out

        return self._run("le comptage des lignes", count)

    def _analyze(self, conn: Connection) -> None:
        """Refresh PostgreSQL planner statistics (after bulk loads the planner otherwise
        picks sequential scans for the id lookups of large upserts)."""
        if conn.dialect.name == "postgresql":
            for name in model.TABLE_COLUMNS:
                conn.execute(sa.text(f"ANALYZE {_qualified(self.schema, name, conn)}"))

    def _require_schema(self, conn: Connection) -> None:
        if not sa.inspect(conn).has_table("initiatives", schema=self.schema):
            raise StorageError(
                "La base du catalogue n'est pas initialisée "
                f"({sa.make_url(self.url).render_as_string()}). "
                "Lancez « territoires setup » ou « territoires catalogue seed »."
            )

    # ------------------------------------------------------------------ contribution

    def transaction(self, what: str, fn: Callable[[Connection], Any]) -> Any:
        """Run ``fn(conn)`` in one transaction (all or nothing); ``what`` names the operation
        in the French error message."""
        return self._run(what, fn)

    def revision(self) -> int:
        """Current catalogue revision (0 before schema v2): one cheap query."""
        rev = self.t["catalogue_revision"]
        try:
            with self.engine.connect() as conn:
                value = conn.execute(sa.select(rev.c.revision).where(rev.c.id == 1)).scalar()
        except sa.exc.SQLAlchemyError:
            return 0
        return int(value or 0)

    def lock_writes(self, conn: Connection) -> None:
        """Take the catalogue's write lock inside the caller's transaction, without moving the
        revision: a write to the revision row, as :meth:`bump_revision` (SQLite reserves its
        write lock, PostgreSQL locks the row), so that what the caller reads next cannot go
        stale before it writes (publishers bump the revision first, under the same lock)."""
        rev = self.t["catalogue_revision"]
        conn.execute(rev.update().where(rev.c.id == 1).values(revision=rev.c.revision))

    def bump_revision(self, conn: Connection) -> int:
        """Increment the catalogue revision inside the caller's transaction."""
        rev = self.t["catalogue_revision"]
        now = dt.datetime.now(dt.UTC)
        done = conn.execute(rev.update().where(rev.c.id == 1).values(
            revision=rev.c.revision + 1, updated_at=now)).rowcount
        if not done:
            conn.execute(rev.insert().values(id=1, revision=2, updated_at=now))
        return int(conn.execute(sa.select(rev.c.revision).where(rev.c.id == 1)).scalar() or 0)

    def audit(self, conn: Connection, actor: str, action: str, target: str | None = None,
              detail: str | None = None) -> None:
        """Append one line to the audit log inside the caller's transaction."""
        conn.execute(self.t["audit_log"].insert().values(
            at=dt.datetime.now(dt.UTC), actor=actor, action=action, target=target,
            detail=detail))

    def payloads(self, conn: Connection, ids: list[str]) -> dict[str, dict]:
        """Published payloads of ``ids`` (see :func:`read_payloads`)."""
        return read_payloads(conn, self.t, ids)

    def current_version(self, conn: Connection, initiative_id: str,
                        lock: bool = False) -> int | None:
        """Published version of an initiative (None if absent); ``lock`` takes a row lock
        (``SELECT … FOR UPDATE`` on PostgreSQL) until the end of the transaction."""
        ini = self.t["initiatives"]
        query = sa.select(ini.c.version).where(ini.c.id == initiative_id)
        if lock:
            query = query.with_for_update()
        value = conn.execute(query).scalar()
        return None if value is None else int(value)

    def last_recorded_version(self, conn: Connection, initiative_id: str) -> int:
        """Highest version kept in the history of an initiative (0 if none)."""
        ver = self.t["initiative_versions"]
        value = conn.execute(sa.select(sa.func.max(ver.c.version))
                             .where(ver.c.initiative_id == initiative_id)).scalar()
        return int(value or 0)

    def write_initiative(self, conn: Connection, catalogue: model.Catalogue, version: int
                         ) -> dict[str, list[dict[str, Any]]]:
        """Replace one initiative (its row, child rows and attached funding lines, national
        lines excepted) by the one of ``catalogue`` at ``version``, inside the caller's
        transaction. Returns the published payload."""
        ini = self.t["initiatives"]
        fund = self.t["funding"]
        recs = _records(catalogue.initiatives)
        if len(recs) != 1:
            raise StorageError("Une fiche à la fois : le contenu doit décrire une seule "
                               "initiative.")
        now = dt.datetime.now(dt.UTC)
        row = _initiative_row(recs[0])
        iid = row["id"]
        old = conn.execute(sa.select(ini.c.created_at).where(ini.c.id == iid)).scalar()
        row.update(created_at=old or now, updated_at=now, version=version)
        for name in ("organisations", "territories", "indicators"):
            conn.execute(self.t[name].delete().where(self.t[name].c.initiative_id == iid))
        conn.execute(ini.delete().where(ini.c.id == iid))
        conn.execute(fund.delete().where(
            (fund.c.initiative_id == iid)
            & sa.or_(fund.c.source.is_(None), ~fund.c.source.startswith("national:"))))
        fund_rows = [_funding_row(r) for r in _records(catalogue.funding)]
        for r in fund_rows:
            r["initiative_id"] = iid
        ids = [r["id"] for r in fund_rows]
        taken = [r[0] for r in conn.execute(sa.select(fund.c.id).where(fund.c.id.in_(ids)))]
        if taken:
            raise StorageError("Identifiant de ligne de financement déjà utilisé par une autre "
                               f"initiative : « {taken[0]} ». Rien n'a été écrit.")
        conn.execute(ini.insert().values(**row))
        for name in ("organisations", "territories", "indicators"):
            rows = [_child_row(name, r) for r in _records(getattr(catalogue, name))]
            for r in rows:
                r["initiative_id"] = iid
            _insert(conn, self.t[name], rows)
        _insert(conn, fund, fund_rows)
        return read_payloads(conn, self.t, [iid])[iid]

    def add_version(self, conn: Connection, initiative_id: str, version: int,
                    payload: dict[str, list[dict[str, Any]]], *, kind: str, author: str,
                    moderator: str | None = None, comment: str | None = None,
                    proposal_id: int | None = None) -> None:
        """Keep one published version in the history (inside the caller's transaction)."""
        conn.execute(self.t["initiative_versions"].insert().values(
            initiative_id=initiative_id, version=version, snapshot=dump_payload(payload),
            kind=kind, author=author, moderator=moderator, comment=comment,
            published_at=dt.datetime.now(dt.UTC), proposal_id=proposal_id))

    # ------------------------------------------------------------------ writing

    def upsert(self, catalogue: model.Catalogue, *, author: str = "import",
               comment: str | None = None, dry_run: bool = False,
               expected_versions: Mapping[str, int | None] | None = None,
               source: str | None = None) -> UpsertReport:
        """Insert or replace initiatives (with their child rows) and funding lines, all in one
        transaction. A changed initiative gets ``version + 1`` and a new ``updated_at``; an
        unchanged one is left as is; ``created_at`` is kept. Every new or changed initiative
        is kept in the history (``initiative_versions``, by ``author``), the catalogue
        revision is bumped and the audit log records the import. With ``dry_run`` nothing is
        written: the report says what the import would do (same comparison).

        ``expected_versions`` (no lost update): the published version each initiative must
        still have (None: must not exist), usually the versions seen when the file was
        checked (:attr:`UpsertReport.changed_versions`, ``unchanged_versions``, None for
        ``added_ids``). Checked in the same transaction, under the catalogue's write lock,
        before anything is written; if any differs, :class:`ConflictError` names them (and
        ``source``, the file) and nothing is written."""
        now = dt.datetime.now(dt.UTC)
        ini_rows = [_initiative_row(r) for r in _records(catalogue.initiatives)]
        children: dict[str, dict[str, list[dict]]] = {}
        for name in ("organisations", "territories", "indicators"):
            per: dict[str, list[dict]] = {}
            for rec in _records(getattr(catalogue, name)):
                row = _child_row(name, rec)
                per.setdefault(row["initiative_id"], []).append(row)
            children[name] = per
        fund_rows = [_funding_row(r) for r in _records(catalogue.funding)]

        def write(conn: Connection) -> UpsertReport:
            self._require_schema(conn)
            if not dry_run:
                self.lock_writes(conn)  # the versions read below stay current until written
            self._analyze(conn)
            report = UpsertReport()
            ini = self.t["initiatives"]
            ids = [r["id"] for r in ini_rows]
            ver = self.t["initiative_versions"]
            had_history = bool(conn.execute(
                sa.select(sa.func.count()).select_from(ver)).scalar())
            existing_rows: dict[str, dict] = {}
            existing_children: dict[str, dict[str, list[dict]]] = {
                n: {} for n in children
            }
            for chunk in _chunks(ids, 500):
                for r in conn.execute(sa.select(ini).where(ini.c.id.in_(chunk))):
                    existing_rows[r.id] = dict(r._mapping)
                for name in children:
                    t = self.t[name]
                    for r in conn.execute(sa.select(t).where(t.c.initiative_id.in_(chunk))
                                          .order_by(t.c.pk)):
                        existing_children[name].setdefault(r.initiative_id, []).append(
                            dict(r._mapping)
                        )
            if expected_versions is not None:
                self._check_versions(conn, expected_versions, existing_rows, source)
            recorded_versions: dict[str, int] = {}
            new_ids = [i for i in ids if i not in existing_rows]
            if had_history:
                for chunk in _chunks(new_ids, 500):
                    recorded_versions.update({
                        r[0]: int(r[1] or 0) for r in conn.execute(
                            sa.select(ver.c.initiative_id, sa.func.max(ver.c.version))
                            .where(ver.c.initiative_id.in_(chunk))
                            .group_by(ver.c.initiative_id))
                    })
            to_insert: list[dict] = []
            child_inserts: dict[str, list[dict]] = {n: [] for n in children}
            to_delete: list[str] = []
            for row in ini_rows:
                iid = row["id"]
                kids = {n: children[n].get(iid, []) for n in children}
                old = existing_rows.get(iid)
                if old is not None:
                    # private fields are not in public exports: left empty, they keep their
                    # stored value (a re-imported public export changes nothing)
                    row = {**row, **{c: old[c] for c in model.PRIVATE_COLUMNS
                                     if _is_missing(row.get(c)) and not _is_missing(old.get(c))}}
                    old_kids = {
                        n: _children_content(existing_children[n].get(iid, []))
                        for n in children
                    }
                    new_kids = {n: _children_content(kids[n]) for n in children}
                    old_norm = _initiative_row(_decode_initiative(old))
                    if _canon_initiative(old_norm, old_kids) == _canon_initiative(row, new_kids):
                        report.unchanged += 1
                        report.unchanged_versions[iid] = int(old["version"] or 1)
                        continue
                    report.changed_versions[iid] = int(old["version"] or 1)
                    row = {**row, "created_at": old["created_at"] or now,
                           "updated_at": now, "version": int(old["version"] or 1) + 1}
                    to_delete.append(iid)
                    report.updated += 1
                else:
                    report.added_ids.append(iid)
                    version = row["version"] or 1
                    recorded = recorded_versions.get(iid, 0)
                    row = {**row, "created_at": row["created_at"] or now,
                           "updated_at": row["updated_at"] or row["created_at"] or now,
                           "version": max(version, recorded + 1)}
                    report.inserted += 1
                to_insert.append(row)
                for n in children:
                    child_inserts[n].extend(kids[n])
            if dry_run:
                fund = self.t["funding"]
                fids = [r["id"] for r in fund_rows]
                for chunk in _chunks(fids, 500):
                    report.funding_replaced += int(conn.execute(
                        sa.select(sa.func.count()).select_from(fund)
                        .where(fund.c.id.in_(chunk))).scalar() or 0)
                report.funding_inserted = len(fund_rows) - report.funding_replaced
                return report
            for chunk in _chunks(to_delete, 500):
                for name in children:
                    t = self.t[name]
                    conn.execute(t.delete().where(t.c.initiative_id.in_(chunk)))
                conn.execute(ini.delete().where(ini.c.id.in_(chunk)))
            _insert(conn, ini, to_insert)
            for name, rows in child_inserts.items():
                _insert(conn, self.t[name], rows)
            fund = self.t["funding"]
            fids = [r["id"] for r in fund_rows]
            for chunk in _chunks(fids, 500):
                found = conn.execute(
                    sa.select(sa.func.count()).select_from(fund).where(fund.c.id.in_(chunk))
                ).scalar() or 0
                report.funding_replaced += int(found)
                conn.execute(fund.delete().where(fund.c.id.in_(chunk)))
            _insert(conn, fund, fund_rows)
            report.funding_inserted = len(fund_rows) - report.funding_replaced
            changed = {r["id"]: int(r["version"]) for r in to_insert}
            if changed:
                if len(changed) > 1000:
                    self._analyze(conn)  # fresh statistics for the bulk read-back below
                payloads = read_payloads(conn, self.t, list(changed))
                _insert(conn, ver, [
                    {"initiative_id": iid, "version": changed[iid],
                     "snapshot": dump_payload(payloads[iid]), "kind": "import",
                     "author": author, "moderator": None, "published_at": now,
                     "comment": comment, "proposal_id": None}
                    for iid in changed
                ])
            if changed or fund_rows:
                self.bump_revision(conn)
                self.audit(conn, author, "import", None, report.describe())
            return report

        return self._run("l'enregistrement du catalogue", write)

    def _check_versions(self, conn: Connection, expected: Mapping[str, int | None],
                        existing_rows: dict[str, dict], source: str | None) -> None:
        """Raise :class:`ConflictError` if an initiative of ``expected`` is no longer at the
        version expected (``existing_rows``: the stored rows already read, by id)."""
        ini = self.t["initiatives"]
        current = {iid: int(row["version"] or 1) for iid, row in existing_rows.items()}
        others = [iid for iid in expected if iid not in existing_rows]
        for chunk in _chunks(others, 500):
            current.update({r[0]: int(r[1] or 1) for r in conn.execute(
                sa.select(ini.c.id, ini.c.version).where(ini.c.id.in_(chunk)))})
        stale = {iid: (want, current.get(iid)) for iid, want in expected.items()
                 if current.get(iid) != want}
        if stale:
            raise _versions_conflict(stale, source)

    def replace_funding_source(self, prefix: str, funding: pd.DataFrame) -> int:
        """Delete funding lines whose ``source`` starts with ``prefix`` and insert ``funding``,
        in one transaction. Returns the number of lines inserted."""
        rows = [_funding_row(r) for r in _records(funding)]

        def write(conn: Connection) -> int:
            self._require_schema(conn)
            fund = self.t["funding"]
            conn.execute(fund.delete().where(fund.c.source.startswith(prefix, autoescape=True)))
            _insert(conn, fund, rows)
            self.bump_revision(conn)
            self.audit(conn, "import", "funding", prefix, f"{len(rows)} ligne(s)")
            return len(rows)

        return self._run("le remplacement des financements nationaux", write)

    def delete_initiatives(self, ids: Iterable[str]) -> int:
        """Delete initiatives (and their child rows); returns how many were deleted."""
        ids = list(ids)

        def write(conn: Connection) -> int:
            ini = self.t["initiatives"]
            n = 0
            for chunk in _chunks(ids, 500):
                n += conn.execute(ini.delete().where(ini.c.id.in_(chunk))).rowcount or 0
            if n:
                self.bump_revision(conn)
                self.audit(conn, "import", "delete", None, f"{n} initiative(s)")
            return n

        return self._run("la suppression d'initiatives", write)


def _versions_conflict(stale: Mapping[str, tuple[int | None, int | None]],
                       source: str | None) -> ConflictError:
    """French refusal of a write whose initiatives changed since the file was checked."""

    def what(want: int | None, got: int | None) -> str:
        if want is None:
            return f"publiée entre-temps en version {got}"
        if got is None:
            return f"version {want} vérifiée, supprimée depuis"
        return f"version {want} vérifiée, version {got} publiée depuis"

    shown = [f"« {iid} » ({what(*pair)})" for iid, pair in list(stale.items())[:20]]
    more = f" et {len(stale) - 20} autre(s)" if len(stale) > 20 else ""
    head = f"Import de « {source} » refusé" if source else "Écriture refusée"
    if len(stale) == 1:
        body = f"la fiche {shown[0]} a été modifiée"
    else:
        body = f"{len(stale)} fiches ({', '.join(shown)}{more}) ont été modifiées"
    return ConflictError(f"{head} : {body} depuis la vérification du fichier : relancez la "
                         "vérification. Rien n'a été écrit.")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _insert(conn: Connection, table: sa.Table, rows: list[dict]) -> None:
    for chunk in _chunks(rows, BATCH_SIZE):
        conn.execute(table.insert(), chunk)


def _decode_initiative(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for col in model.INITIATIVE_LIST_COLUMNS:
        raw = out.get(col)
        out[col] = json.loads(raw) if raw else []
    return out


def _decode_list(raw: Any) -> list:
    return json.loads(raw) if isinstance(raw, str) and raw else []


def _decoded_lists(values: Iterable[Any]) -> list[list]:
    """:func:`_decode_list` of each value, the equal items shared: a catalogue's list columns
    hold a few dozen vocabulary codes, decoded once each instead of once per initiative
    (500,000 small strings, 25 MB, at 50,000 initiatives). Each row keeps its own list."""
    decoded: dict[str, list] = {}
    items: dict[Any, Any] = {}
    out = []
    for raw in values:
        if not (isinstance(raw, str) and raw):
            out.append([])
            continue
        known = decoded.get(raw)
        if known is None:
            known = decoded[raw] = [items.setdefault(v, v) if isinstance(v, str) else v
                                    for v in json.loads(raw)]
        out.append(list(known))
    return out


def _shared_dates(values: Iterable[Any]) -> list[dt.date | None]:
    """:func:`_date` of each value, equal dates as one (immutable) object."""
    memo: dict[Any, dt.date | None] = {}
    out = []
    for v in values:
        try:
            date = memo[v]
        except KeyError:
            date = memo[v] = _date(v)
        except TypeError:  # unhashable
            date = _date(v)
        out.append(date)
    return out


def frames_to_catalogue(tables: Mapping[str, list[dict] | pd.DataFrame]) -> model.Catalogue:
    """Build a typed :class:`~territoires.catalogue.model.Catalogue` from database rows
    (per table: a list of row dicts, or a frame of the rows)."""
    src = tables.get("initiatives", [])
    if isinstance(src, pd.DataFrame):
        ini = pd.DataFrame(src, columns=model.INITIATIVE_COLUMNS)
        ini = ini.astype({c: object for c in ("start_date", "end_date",
                                              *model.INITIATIVE_LIST_COLUMNS)})
        for col in model.INITIATIVE_LIST_COLUMNS:
            ini[col] = pd.Series(_decoded_lists(ini[col]), index=ini.index, dtype=object)
    else:
        ini = pd.DataFrame([_decode_initiative(r) for r in src],
                           columns=model.INITIATIVE_COLUMNS)
        ini = ini.astype({c: object for c in ("start_date", "end_date",
                                              *model.INITIATIVE_LIST_COLUMNS)})
    for col in ("start_date", "end_date"):
        ini[col] = pd.Series(_shared_dates(ini[col]), index=ini.index, dtype=object)
    for col in ("created_at", "updated_at"):
        ini[col] = pd.to_datetime(
            pd.Series([_timestamp(v) for v in ini[col]], index=ini.index, dtype=object), utc=True
        )
    ini["version"] = ini["version"].astype("int64")
    orgs = pd.DataFrame(tables.get("organisations", []), columns=model.ORGANISATION_COLUMNS)
    terr = pd.DataFrame(tables.get("territories", []), columns=model.TERRITORY_COLUMNS)
    ind = pd.DataFrame(tables.get("indicators", []), columns=model.INDICATOR_COLUMNS)
    ind["value"] = ind["value"].astype("float64")
    ind["year"] = ind["year"].astype("Int64")
    fund = pd.DataFrame(tables.get("funding", []), columns=model.FUNDING_COLUMNS)
    fund["amount_eur"] = fund["amount_eur"].astype("float64")
    fund["year_start"] = fund["year_start"].astype("int64")
    fund["year_end"] = fund["year_end"].astype("int64")
    return model.Catalogue(
        initiatives=ini, organisations=orgs, territories=terr, indicators=ind, funding=fund
    )
