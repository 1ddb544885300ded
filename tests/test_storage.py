"""Tests of the catalogue database (SQLite always; PostgreSQL when reachable)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from territoires.catalogue import model, storage
from territoires.catalogue.storage import Migration, Store
from territoires.errors import ConflictError, StorageError


def sample_catalogue() -> model.Catalogue:
    """Two initiatives with child rows and three funding lines."""
    ini = pd.DataFrame([
        {"id": "cite-cenon", "title": "Cité éducative de Cenon", "summary": "Résumé",
         "scale": "commune", "start_date": dt.date(2019, 9, 1), "end_date": None,
         "themes": ["continuite_educative", "parentalite"], "publics": ["college"],
         "alliance_levels": ["meso", "macro"], "maturity": "deploiement",
         "contact_email": "x@example.org"},
        {"id": "mireuil", "title": "Mireuil", "scale": "quartier",
         "start_date": "2021-01-15", "end_date": dt.date(2023, 6, 30),
         "themes": ["culture"], "publics": [], "alliance_levels": [], "maturity": "emergence"},
    ])
    orgs = pd.DataFrame([
        {"initiative_id": "cite-cenon", "role": "porteur", "name": "Ville de Cenon",
         "type": "collectivite", "siret": "21330119700019"},
        {"initiative_id": "cite-cenon", "role": "partenaire", "name": "Collège",
         "type": "etablissement_scolaire", "siret": None},
    ])
    terr = pd.DataFrame([
        {"initiative_id": "cite-cenon", "level": "commune", "code": "33119"},
        {"initiative_id": "cite-cenon", "level": "qpv", "code": "QN03312M"},
        {"initiative_id": "mireuil", "level": "qpv", "code": "QN01701M"},
    ])
    ind = pd.DataFrame([
        {"initiative_id": "cite-cenon", "label": "Élèves", "value": 1200.0, "unit": "élèves",
         "year": 2023},
        {"initiative_id": "mireuil", "label": "Familles", "value": 40, "unit": None,
         "year": None},
    ])
    fund = pd.DataFrame([
        {"id": "f-1", "funder": "ANCT", "funder_type": "etat", "scheme": "cite_educative",
         "amount_eur": 150000.5, "year_start": 2022, "year_end": 2024,
         "territory_level": "commune", "territory_code": "33119",
         "initiative_id": "cite-cenon", "source": "fiche"},
        {"id": "f-2", "funder": "CAF", "funder_type": "caf", "scheme": "caf_parentalite",
         "amount_eur": 5000, "year_start": 2023, "year_end": None,
         "territory_level": "qpv", "territory_code": "QN01701M", "initiative_id": None,
         "source": None},
        {"id": "f-3", "funder": "État (ANCT)", "funder_type": "etat",
         "scheme": "adultes_relais", "amount_eur": 20000.0, "year_start": 2024,
         "year_end": 2024, "territory_level": "contrat_ville", "territory_code": "CN03301I",
         "initiative_id": None, "source": "national:adulte-relais-2024"},
    ])
    return model.Catalogue(initiatives=ini, organisations=orgs, territories=terr,
                           indicators=ind, funding=fund)


def test_sqlite_file_and_parent_created(tmp_path) -> None:
    path = tmp_path / "a" / "b" / "cat.sqlite"
    store = Store(f"sqlite:///{path}")
    assert store.schema_version() == 0
    assert store.create_or_upgrade() == storage.SCHEMA_VERSION
    assert path.exists()
    assert store.create_or_upgrade() == storage.SCHEMA_VERSION  # idempotent
    names = set(sa.inspect(store.engine).get_table_names())
    assert {"schema_version", *model.TABLE_COLUMNS} <= names
    indexes = {i["name"] for i in sa.inspect(store.engine).get_indexes("funding")}
    assert {"ix_funding_territory", "ix_funding_scheme_year"} <= indexes
    store.dispose()


def test_round_trip_types(store_factory) -> None:
    store = store_factory()
    store.create_or_upgrade()
    report = store.upsert(sample_catalogue())
    assert (report.inserted, report.updated, report.unchanged) == (2, 0, 0)
    assert report.funding_inserted == 3
    cat = store.load_catalogue()
    for name, cols in model.TABLE_COLUMNS.items():
        assert list(getattr(cat, name).columns) == cols
    ini = cat.initiatives.set_index("id")
    assert ini.loc["cite-cenon", "themes"] == ["continuite_educative", "parentalite"]
    assert ini.loc["mireuil", "publics"] == []
    assert ini.loc["cite-cenon", "start_date"] == dt.date(2019, 9, 1)
    assert ini.loc["cite-cenon", "end_date"] is None
    assert ini.loc["mireuil", "start_date"] == dt.date(2021, 1, 15)
    assert str(cat.initiatives["created_at"].dt.tz) == "UTC"
    assert list(cat.initiatives["version"]) == [1, 1]
    assert cat.initiatives["version"].dtype == "int64"
    fund = cat.funding.set_index("id")
    assert fund.loc["f-1", "amount_eur"] == 150000.5
    assert fund.loc["f-2", "year_end"] == 2023  # defaulted to year_start
    assert cat.funding["year_start"].dtype == "int64"
    assert cat.funding["amount_eur"].dtype == "float64"
    assert list(cat.organisations["name"]) == ["Ville de Cenon", "Collège"]
    assert cat.indicators.set_index("label").loc["Familles", "value"] == 40.0
    assert pd.isna(cat.indicators.set_index("label").loc["Familles", "year"])
    assert store.counts() == {"initiatives": 2, "organisations": 2, "territories": 3,
                              "indicators": 2, "funding": 3, "funding_national": 1}
    without = store.load_catalogue(include_national=False)
    assert sorted(without.funding["id"]) == ["f-1", "f-2"]


def test_upsert_versions(store_factory) -> None:
    store = store_factory()
    store.create_or_upgrade()
    store.upsert(sample_catalogue())
    first = store.load_catalogue().initiatives.set_index("id")
    again = store.upsert(sample_catalogue())
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert again.funding_replaced == 3
    same = store.load_catalogue().initiatives.set_index("id")
    assert (same["version"] == 1).all()
    assert (same["updated_at"] == first["updated_at"]).all()

    changed = sample_catalogue()
    changed.initiatives.loc[1, "title"] = "Mireuil (nouveau titre)"
    changed.territories = changed.territories.iloc[:2]  # mireuil loses its territory
    report = store.upsert(changed)
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 1)
    cat = store.load_catalogue()
    ini = cat.initiatives.set_index("id")
    assert ini.loc["mireuil", "version"] == 2
    assert ini.loc["mireuil", "title"] == "Mireuil (nouveau titre)"
    assert ini.loc["mireuil", "created_at"] == first.loc["mireuil", "created_at"]
    assert ini.loc["mireuil", "updated_at"] > first.loc["mireuil", "updated_at"]
    assert ini.loc["cite-cenon", "version"] == 1
    assert "mireuil" not in set(cat.territories["initiative_id"])
    # a child-only change also bumps the version
    child = sample_catalogue()
    child.initiatives.loc[1, "title"] = "Mireuil (nouveau titre)"
    child.organisations.loc[1, "name"] = "Collège Jean Zay"
    report = store.upsert(child)
    assert report.updated == 2
    assert store.load_catalogue().initiatives.set_index("id").loc["cite-cenon", "version"] == 2


def test_cascade_delete(store_factory) -> None:
    store = store_factory()
    store.create_or_upgrade()
    store.upsert(sample_catalogue())
    assert store.delete_initiatives(["cite-cenon"]) == 1
    counts = store.counts()
    assert counts["organisations"] == 0
    assert counts["territories"] == 1
    assert counts["indicators"] == 1
    assert counts["funding"] == 3  # funding lines are independent


def test_upsert_rolls_back_on_failure(store_factory) -> None:
    store = store_factory()
    store.create_or_upgrade()
    store.upsert(sample_catalogue())
    before = store.load_catalogue()
    bad = sample_catalogue()
    bad.initiatives.loc[0, "title"] = "Titre changé"  # would be an update
    bad.initiatives = pd.concat([bad.initiatives, pd.DataFrame([
        {"id": "nouvelle", "title": "Nouvelle", "themes": ["sport"], "maturity": "emergence"}
    ])], ignore_index=True)
    extra = pd.DataFrame([{"id": "f-bad", "funder": None, "funder_type": "etat",
                           "scheme": "autre", "amount_eur": 1.0, "year_start": 2024,
                           "territory_level": "commune", "territory_code": "33063"}])
    bad.funding = pd.concat([bad.funding, extra], ignore_index=True)
    with pytest.raises(StorageError, match="Rien n'a été écrit"):
        store.upsert(bad)
    after = store.load_catalogue()
    assert list(after.initiatives["id"]) == list(before.initiatives["id"])
    assert list(after.initiatives["title"]) == list(before.initiatives["title"])
    assert store.counts()["funding"] == 3


def _national(n: int, year: int, source: str) -> pd.DataFrame:
    return pd.DataFrame({
        "id": [f"adultes_relais-{year}-{i}" for i in range(n)],
        "funder": "État (ANCT)", "funder_type": "etat", "scheme": "adultes_relais",
        "amount_eur": [1000.0 + i for i in range(n)], "year_start": year, "year_end": year,
        "beneficiary": "Asso", "beneficiary_siret": None, "territory_level": "contrat_ville",
        "territory_code": "CN03301I", "initiative_id": None, "source": source,
    })


def test_replace_funding_source(store_factory) -> None:
    store = store_factory()
    store.create_or_upgrade()
    store.upsert(sample_catalogue())
    assert store.replace_funding_source("national:", _national(3000, 2024, "national:a")) == 3000
    counts = store.counts()
    assert counts["funding"] == 3002  # f-3 (national) replaced, f-1/f-2 kept
    assert counts["funding_national"] == 3000
    store.replace_funding_source("national:", _national(10, 2025, "national:b"))
    assert store.counts()["funding_national"] == 10
    # failure midway: nothing changes
    bad = _national(2500, 2023, "national:c")
    bad.loc[2400, "scheme"] = None
    with pytest.raises(StorageError):
        store.replace_funding_source("national:", bad)
    assert store.counts()["funding_national"] == 10
    # the prefix is literal (no LIKE wildcards)
    store.replace_funding_source("n%", _national(0, 2025, "x"))
    assert store.counts()["funding_national"] == 10


def _create_v0(store: Store) -> None:
    """A pre-versioned database: initiatives without outlook/version/publics, no other table."""
    md = sa.MetaData(schema=store.schema)
    sa.Table("initiatives", md,
             sa.Column("id", sa.String(200), primary_key=True),
             sa.Column("title", sa.Text, nullable=False),
             sa.Column("themes", sa.Text, nullable=False),
             sa.Column("maturity", sa.String(40), nullable=False),
             sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
             sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False))
    with store.engine.begin() as conn:
        if store.schema:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{store.schema}"'))
        md.create_all(conn)
        now = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
        conn.execute(md.tables[next(iter(md.tables))].insert().values(
            id="ancienne", title="Ancienne fiche", themes='["culture"]', maturity="emergence",
            created_at=now, updated_at=now))


def test_upgrade_from_v0(store_factory) -> None:
    store = store_factory()
    _create_v0(store)
    assert store.schema_version() == 0
    assert store.create_or_upgrade() == storage.SCHEMA_VERSION
    assert store.schema_version() == storage.SCHEMA_VERSION
    cat = store.load_catalogue()
    row = cat.initiatives.set_index("id").loc["ancienne"]
    assert row["title"] == "Ancienne fiche"
    assert row["version"] == 1
    assert row["publics"] == []
    assert row["outlook"] is None
    assert row["created_at"] == pd.Timestamp("2024-01-02 03:04:05", tz="UTC")
    store.upsert(sample_catalogue())  # every table usable now
    assert store.counts()["initiatives"] == 3


def test_ordered_migrations_and_newer_database(store_factory, monkeypatch) -> None:
    store = store_factory()
    store.create_or_upgrade()

    def add_notes(conn: sa.Connection, md: sa.MetaData) -> None:
        sa.Table("notes", sa.MetaData(schema=md.schema),
                 sa.Column("id", sa.Integer, primary_key=True)).create(conn)

    nxt = storage.SCHEMA_VERSION + 1
    monkeypatch.setattr(storage, "MIGRATIONS",
                        [*storage.MIGRATIONS, Migration(nxt, "notes", add_notes)])
    monkeypatch.setattr(storage, "SCHEMA_VERSION", nxt)
    assert store.create_or_upgrade() == nxt
    assert sa.inspect(store.engine).has_table("notes", schema=store.schema)
    assert store.create_or_upgrade() == nxt
    monkeypatch.setattr(storage, "SCHEMA_VERSION", nxt - 1)
    with pytest.raises(StorageError, match="plus récente"):
        store.create_or_upgrade()


def test_errors_in_french(tmp_path) -> None:
    with pytest.raises(StorageError, match="invalide"):
        Store("pas une url")
    store = Store(f"sqlite:///{tmp_path / 'vide.sqlite'}")
    with pytest.raises(StorageError, match="n'est pas initialisée"):
        store.load_catalogue()
    (tmp_path / "fichier").write_text("x")
    with pytest.raises(StorageError):
        Store(f"sqlite:///{tmp_path / 'fichier' / 'sous' / 'x.sqlite'}")
    store.dispose()


def test_upgrade_from_v1_keeps_versions(store_factory, monkeypatch) -> None:
    """A v1 database (five tables only) gains the contribution tables; every existing
    initiative becomes its first recorded version; the revision starts at 1."""
    store = store_factory()
    monkeypatch.setattr(storage, "MIGRATIONS", storage.MIGRATIONS[:1])
    monkeypatch.setattr(storage, "SCHEMA_VERSION", 1)
    assert store.create_or_upgrade() == 1
    assert store.revision() == 0  # no revision table yet: cheap read says 0
    cat = sample_catalogue()
    rows = [storage._initiative_row(r) for r in storage._records(cat.initiatives)]
    now = dt.datetime.now(dt.UTC)
    for r in rows:
        r.update(created_at=now, updated_at=now, version=3)
    kids = [storage._child_row("territories", r) for r in storage._records(cat.territories)]
    with store.engine.begin() as conn:
        conn.execute(store.t["initiatives"].insert(), rows)
        conn.execute(store.t["territories"].insert(), kids)
    insp = sa.inspect(store.engine)
    assert not insp.has_table("proposals", schema=store.schema)
    monkeypatch.undo()
    assert store.create_or_upgrade() == storage.SCHEMA_VERSION
    insp = sa.inspect(store.engine)
    for name in storage.V2_TABLES:
        assert insp.has_table(name, schema=store.schema), name
    assert store.revision() == 1
    with store.engine.connect() as conn:
        ver = store.t["initiative_versions"]
        got = conn.execute(sa.select(ver.c.initiative_id, ver.c.version, ver.c.snapshot)
                           .order_by(ver.c.initiative_id)).all()
    assert [(g[0], g[1]) for g in got] == sorted((r["id"], 3) for r in rows)
    snap = storage.load_payload(got[0][2])
    assert snap["initiatives"][0]["id"] == got[0][0]
    assert snap["territories"], "child rows are in the snapshot"
    # published tables unchanged by the migration
    assert store.counts()["initiatives"] == len(rows)
    assert store.create_or_upgrade() == storage.SCHEMA_VERSION  # idempotent


def test_every_write_bumps_revision_and_keeps_versions(store_factory) -> None:
    store = store_factory()
    store.create_or_upgrade()
    r0 = store.revision()
    store.upsert(sample_catalogue())
    r1 = store.revision()
    assert r1 == r0 + 1
    store.upsert(sample_catalogue())  # nothing changed except funding lines replaced
    assert store.revision() == r1 + 1
    changed = sample_catalogue()
    changed.initiatives.loc[0, "title"] = "Nouveau titre"
    store.upsert(changed, author="lot-2026")
    iid = changed.initiatives.loc[0, "id"]
    with store.engine.connect() as conn:
        ver = store.t["initiative_versions"]
        got = conn.execute(sa.select(ver.c.version, ver.c.author)
                           .where(ver.c.initiative_id == iid).order_by(ver.c.version)).all()
    assert [tuple(g) for g in got] == [(1, "import"), (2, "lot-2026")]
    store.replace_funding_source("national:", _national(2, 2024, "national:a"))
    r2 = store.revision()
    assert store.delete_initiatives([iid]) == 1
    assert store.revision() == r2 + 1
    # re-created after a delete: the version continues after the recorded history
    store.upsert(sample_catalogue())
    assert int(store.load_catalogue().initiatives.set_index("id").loc[iid, "version"]) == 3


def test_upsert_refuses_versions_changed_since_checked(store_factory) -> None:
    """``expected_versions`` (the versions seen when the file was checked): any initiative
    published, changed or deleted since makes the whole write a ConflictError naming the
    file and the ids; nothing is written, not even the revision."""
    store = store_factory()
    store.create_or_upgrade()
    store.upsert(sample_catalogue())
    mine = sample_catalogue()
    mine.initiatives.loc[0, "title"] = "Titre du fichier"
    checked = store.upsert(mine, dry_run=True)
    assert checked.changed_versions == {"cite-cenon": 1}
    assert checked.unchanged_versions == {"mireuil": 1}
    theirs = sample_catalogue()
    theirs.initiatives.loc[1, "title"] = "Titre publié entre-temps"
    store.upsert(theirs, author="autre")  # mireuil: version 2
    before = store.load_catalogue().initiatives.set_index("id")
    revision = store.revision()
    expected = {"cite-cenon": 1, "mireuil": 1, "ghost": 3, "nouvelle": None}
    with store.engine.begin() as conn:  # "nouvelle" published since, "ghost" deleted since
        conn.execute(store.t["initiatives"].insert().values(
            id="nouvelle", title="N", themes="[]", publics="[]", alliance_levels="[]",
            maturity="emergence", created_at=dt.datetime.now(dt.UTC),
            updated_at=dt.datetime.now(dt.UTC), version=1))
    with pytest.raises(ConflictError) as exc:
        store.upsert(mine, author="moi", expected_versions=expected, source="lot.xlsx")
    message = str(exc.value)
    assert message.startswith("Import de « lot.xlsx » refusé : 3 fiches (")
    assert "« mireuil » (version 1 vérifiée, version 2 publiée depuis)" in message
    assert "« ghost » (version 3 vérifiée, supprimée depuis)" in message
    assert "« nouvelle » (publiée entre-temps en version 1)" in message
    assert "cite-cenon" not in message
    assert message.endswith("depuis la vérification du fichier : relancez la vérification. "
                            "Rien n'a été écrit.")
    after = store.load_catalogue().initiatives.set_index("id")
    assert after.loc[["cite-cenon", "mireuil"], ["title", "version"]].equals(
        before.loc[["cite-cenon", "mireuil"], ["title", "version"]])
    assert store.revision() == revision
    # the versions as they are now: written
    report = store.upsert(mine, author="moi", expected_versions={"cite-cenon": 1,
                                                                   "mireuil": 2})
    assert (report.updated, set(report.changed_versions)) == (2, {"cite-cenon", "mireuil"})
    # a write that changes nothing takes the write lock but leaves the revision as it is
    revision = store.revision()
    store.upsert(model.Catalogue(), expected_versions={})
    assert store.revision() == revision


def test_payload_round_trip(store_factory) -> None:
    store = store_factory()
    store.create_or_upgrade()
    cat = sample_catalogue()
    store.upsert(cat)
    iid = cat.initiatives.loc[0, "id"]
    payload = store.transaction("t", lambda conn: store.payloads(conn, [iid]))[iid]
    text = storage.dump_payload(payload)
    back = storage.payload_catalogue(storage.load_payload(text))
    assert list(back.initiatives["id"]) == [iid]
    assert back.initiatives.iloc[0]["themes"] == payload["initiatives"][0]["themes"]
    assert storage.catalogue_payload(back) == payload


def test_reimported_public_export_keeps_private_emails(store_factory) -> None:
    """A public export has no contact e-mails: importing it back must neither erase them nor
    bump any version (it used to do both)."""
    store = store_factory()
    store.create_or_upgrade()
    cat = sample_catalogue()
    cat.initiatives["contact_email"] = "contact@ex.org"
    store.upsert(cat)
    public = sample_catalogue()
    public.initiatives["contact_email"] = None
    report = store.upsert(public)
    assert (report.updated, report.unchanged) == (0, len(cat.initiatives))
    ini = store.load_catalogue().initiatives
    assert set(ini["contact_email"]) == {"contact@ex.org"}
    assert set(ini["version"]) == {1}


def test_load_catalogue_frames_equal_row_dicts(store_factory) -> None:
    """load_catalogue reads rows as tuples into frames: the catalogue is the one built from
    row dicts (the former read path), column for column, dtype for dtype."""
    store = store_factory()
    store.create_or_upgrade()
    store.upsert(sample_catalogue())
    t = store.t
    with store.engine.connect() as conn:
        rows = {"initiatives": [dict(r._mapping) for r in conn.execute(
            sa.select(t["initiatives"]).order_by(t["initiatives"].c.id))]}
        for name in ("organisations", "territories", "indicators"):
            rows[name] = [dict(r._mapping) for r in conn.execute(
                sa.select(t[name]).order_by(t[name].c.initiative_id, t[name].c.pk))]
        rows["funding"] = [dict(r._mapping) for r in conn.execute(
            sa.select(t["funding"]).order_by(t["funding"].c.id))]
    expected = storage.frames_to_catalogue(rows)
    got = store.load_catalogue()
    for name in model.TABLE_COLUMNS:
        pd.testing.assert_frame_equal(getattr(got, name), getattr(expected, name))


def test_loaded_list_items_and_dates_are_shared_not_copied() -> None:
    """frames_to_catalogue decodes each distinct list cell and date once (the codes of a
    vocabulary, 500,000 small strings at 50,000 initiatives): same values as decoding each
    cell, equal items one object, and each row its own list (editing one leaves the others)."""
    import datetime as dt

    import pandas as pd

    from territoires.catalogue.storage import frames_to_catalogue

    raw = pd.DataFrame({"id": ["a", "b", "c"], "title": ["A", "B", "C"],
                        "themes": ['["culture", "sport"]', '["sport", "culture"]', None],
                        "publics": ['["college"]', '["college"]', ""],
                        "alliance_levels": ["[]", '["macro"]', '["macro"]'],
                        "maturity": ["emergence"] * 3,
                        "start_date": ["2021-09-01", "2021-09-01", None],
                        "end_date": [None, "2023-06-30", "2023-06-30"],
                        "created_at": ["2024-01-01 10:00:00"] * 3,
                        "updated_at": ["2024-01-01 10:00:00"] * 3, "version": [1, 1, 1]})
    ini = frames_to_catalogue({"initiatives": raw}).initiatives
    assert ini["themes"].tolist() == [["culture", "sport"], ["sport", "culture"], []]
    assert ini["publics"].tolist() == [["college"], ["college"], []]
    assert ini["alliance_levels"].tolist() == [[], ["macro"], ["macro"]]
    assert ini["themes"][0][0] is ini["themes"][1][1]  # one "culture"
    assert ini["publics"][0] is not ini["publics"][1]  # own lists
    ini["publics"][0].append("parents")
    assert ini["publics"][1] == ["college"]
    assert ini["start_date"].tolist() == [dt.date(2021, 9, 1), dt.date(2021, 9, 1), None]
    assert ini["start_date"][0] is ini["start_date"][1]
    assert ini["end_date"].tolist() == [None, dt.date(2023, 6, 30), dt.date(2023, 6, 30)]
