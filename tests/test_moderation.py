"""Tests of the contribution workflow (territoires.catalogue.moderation), on SQLite and
PostgreSQL."""

from __future__ import annotations

import threading

import pandas as pd
import pytest
import sqlalchemy as sa

from catalogue_factory import funding_line, initiative, make_catalogue
from territoires.catalogue import auth, moderation, storage
from territoires.catalogue.auth import ANONYMOUS, CLI_USER, User
from territoires.catalogue.model import Catalogue
from territoires.errors import ConflictError, PermissionDeniedError, ValidationError
from territoires.pipeline.territories import TerritoryIndex

ALICE = User("alice@ex.org", "contributeur", "Alice")
BOB = User("bob@ex.org", "contributeur", "Bob")
MOD = User("mod@ex.org", "moderateur", "Modé")
MOD2 = User("mod2@ex.org", "moderateur", "Modé 2")
ADMIN = User("admin@ex.org", "admin", "Admin")
XSS = '<script>alert(1)</script> "><img src=x onerror=alert(2)> & \'q\' [a](http://x)'


def fiche(ident: str = "lecture-lac", *, title: str = "Lecture au Lac",
          maturity: str = "emergence", **fields) -> Catalogue:
    """A one-initiative catalogue as a form would build it (funding without id)."""
    cat = make_catalogue(
        [initiative(ident, [("commune", "33119")], title=title, maturity=maturity,
                    themes=["culture"], porteurs=[("Asso Lire", "association")], **fields)],
        [funding_line(None, 1500, None, None, initiative_id=ident)],
    )
    cat.funding["id"] = None
    cat.funding["territory_level"] = None
    cat.funding["territory_code"] = None
    cat.funding["source"] = None
    return cat


@pytest.fixture
def store(store_factory):
    s = store_factory()
    s.create_or_upgrade()
    s.upsert(make_catalogue([initiative("pau-sport", [("commune", "64445")],
                                        themes=["sport"], contact_email="p@pau.fr")]))
    return s


def snapshot(s: storage.Store) -> dict[str, list]:
    """Every row of every table (published and contribution tables)."""
    out = {}
    with s.engine.connect() as conn:
        for name, table in s.t.items():
            out[name] = sorted(map(repr, conn.execute(sa.select(table)).all()))
    return out


def test_contributor_proposal_waits_then_is_published(store) -> None:
    rev = store.revision()
    sub = moderation.submit_new(store, ALICE, fiche(), comment="nouvelle fiche")
    assert not sub.published and "attend" in sub.describe()
    assert "lecture-lac" not in set(store.load_catalogue().initiatives["id"])
    assert store.revision() == rev  # the published catalogue did not move
    pending = moderation.queue(store, MOD)
    assert [p.id for p in pending] == [sub.proposal_id]
    assert pending[0].title == "Lecture au Lac" and pending[0].author == "alice@ex.org"
    diff = moderation.diff(None, pending[0].payload)
    assert ("Fiche", "Titre", "—", "Lecture au Lac") in set(map(tuple, diff.values))
    assert ("Territoires", "ligne ajoutée", "—", "Commune 33119") in set(map(tuple, diff.values))
    named = moderation.diff(None, pending[0].payload,
                            territory_label=lambda lvl, code: f"Cenon ({code})")
    assert "Cenon (33119)" in set(named["Après"])
    version = moderation.publish(store, MOD, sub.proposal_id, comment="merci")
    assert version == 1
    cat = store.load_catalogue()
    row = cat.initiatives.set_index("id").loc["lecture-lac"]
    assert row["title"] == "Lecture au Lac" and int(row["version"]) == 1
    fund = cat.funding[cat.funding["initiative_id"] == "lecture-lac"]
    assert list(fund["id"]) == ["lecture-lac-f1"]
    assert list(fund["territory_code"]) == ["33119"]  # the fiche's first territory
    assert list(fund["source"]) == ["contribution"]
    assert store.revision() == rev + 1
    history = moderation.versions(store, "lecture-lac")
    assert [(v.version, v.kind, v.author, v.moderator) for v in history] == [
        (1, "new", "alice@ex.org", "mod@ex.org")]
    mine = moderation.my_proposals(store, ALICE)
    assert mine[0].status == "published" and mine[0].published_version == 1
    assert moderation.my_proposals(store, BOB) == []
    with pytest.raises(ConflictError, match="déjà été traitée"):
        moderation.publish(store, MOD, sub.proposal_id)


def test_reject_needs_a_reason_that_the_author_reads(store) -> None:
    sub = moderation.submit_new(store, ALICE, fiche())
    with pytest.raises(ValidationError, match="raison"):
        moderation.reject(store, MOD, sub.proposal_id, "  ")
    moderation.reject(store, MOD, sub.proposal_id, "Fiche en double avec « Lire à Cenon »")
    mine = moderation.my_proposals(store, ALICE)[0]
    assert mine.status == "rejected" and "double" in (mine.reason or "")
    table = moderation.proposals_table([mine])
    assert table.iloc[0]["Statut"] == "Refusée"
    assert moderation.queue(store, MOD) == []
    with pytest.raises(ConflictError):
        moderation.publish(store, MOD, sub.proposal_id)
    assert "lecture-lac" not in set(store.load_catalogue().initiatives["id"])


def test_moderator_edit_publishes_at_once(store) -> None:
    payload, version = moderation.published(store, "pau-sport")
    assert version == 1
    cat = storage.payload_catalogue(payload)
    cat.initiatives.loc[0, "maturity"] = "deploiement"
    sub = moderation.submit_edit(store, MOD, cat, base_version=1, comment="passage")
    assert sub.published and sub.version == 2
    assert store.load_catalogue().initiatives.set_index("id").loc["pau-sport",
                                                                   "maturity"] == "deploiement"
    history = moderation.versions(store, "pau-sport")
    assert [v.kind for v in history] == ["import", "edit"]
    path = moderation.maturity_path(history)
    assert list(path["code"]) == ["deploiement"] or list(path["code"])[-1] == "deploiement"


def _edit(s: storage.Store, title: str) -> Catalogue:
    payload, _ = moderation.published(s, "pau-sport")
    cat = storage.payload_catalogue(payload)
    cat.initiatives.loc[0, "title"] = title
    return cat


def test_no_lost_update_two_moderators(store) -> None:
    first, second = _edit(store, "Titre A"), _edit(store, "Titre B")  # both open version 1
    moderation.submit_edit(store, MOD, first, base_version=1)
    before = snapshot(store)
    with pytest.raises(ConflictError, match=r"version 1.*version 2.*gardées"):
        moderation.submit_edit(store, MOD2, second, base_version=1)
    assert snapshot(store) == before  # nothing written
    assert store.load_catalogue().initiatives.set_index("id").loc["pau-sport",
                                                                   "title"] == "Titre A"


def test_no_lost_update_two_contributors(store) -> None:
    a = moderation.submit_edit(store, ALICE, _edit(store, "Titre Alice"), base_version=1)
    b = moderation.submit_edit(store, BOB, _edit(store, "Titre Bob"), base_version=1)
    assert moderation.publish(store, MOD, a.proposal_id) == 2
    before = snapshot(store)
    with pytest.raises(ConflictError, match="version 2"):
        moderation.publish(store, MOD, b.proposal_id)
    assert snapshot(store) == before
    assert moderation.queue(store, MOD)[0].id == b.proposal_id  # still pending
    # a contributor who opened a stale version is told at once
    with pytest.raises(ConflictError, match="Conflit"):
        moderation.submit_edit(store, BOB, _edit(store, "Encore"), base_version=1)
    with pytest.raises(ConflictError, match="déjà l'identifiant"):
        moderation.submit_new(store, ALICE, fiche("pau-sport"))


def test_concurrent_publishes_one_wins(store) -> None:
    """Two moderators saving the same version at the same instant: one conflict."""
    edits = [_edit(store, "Titre A"), _edit(store, "Titre B")]
    barrier = threading.Barrier(2)
    results: list[object] = []

    def save(user: User, cat: Catalogue) -> None:
        barrier.wait()
        try:
            results.append(moderation.submit_edit(store, user, cat, base_version=1))
        except ConflictError as exc:
            results.append(exc)

    threads = [threading.Thread(target=save, args=(u, c)) for u, c in zip((MOD, MOD2), edits,
                                                                        strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(type(r).__name__ for r in results) == ["ConflictError", "Submission"]
    assert [v.version for v in moderation.versions(store, "pau-sport")] == [1, 2]


def test_restore_publishes_an_old_version_again(store) -> None:
    moderation.submit_edit(store, MOD, _edit(store, "Titre 2"), base_version=1)
    with pytest.raises(ConflictError):
        moderation.restore(store, MOD, "pau-sport", 1, base_version=1)
    assert moderation.restore(store, MOD, "pau-sport", 1, base_version=2) == 3
    history = moderation.versions(store, "pau-sport")
    assert [v.kind for v in history] == ["import", "edit", "restore"]
    assert history[-1].payload["initiatives"][0]["title"] == "Initiative pau-sport"
    diff = moderation.diff(history[1].payload, history[2].payload)
    assert list(diff["Champ"]) == ["Titre"]
    assert list(diff["Avant"]) == ["Titre 2"]


def test_diff_field_by_field_and_private_fields(store) -> None:
    before, _ = moderation.published(store, "pau-sport")
    cat = storage.payload_catalogue(before)
    cat.initiatives.loc[0, "contact_email"] = "new@pau.fr"
    cat.initiatives.loc[0, "maturity"] = "essaimage"
    cat.organisations = pd.concat([cat.organisations, pd.DataFrame([{
        "initiative_id": "pau-sport", "role": "partenaire", "name": XSS,
        "type": "association"}])], ignore_index=True)
    after = storage.catalogue_payload(moderation.prepare(cat))
    public = moderation.diff(before, after)
    assert "Contact : e-mail (privé)" not in set(public["Champ"])
    assert ("Fiche", "Maturité", "Déploiement", "Essaimage / pérennisation") in set(
        map(tuple, public.values))
    added = public[public["Champ"] == "ligne ajoutée"]
    assert added.iloc[0]["Après"].startswith(XSS)  # text kept as is (shown as text)
    private = moderation.diff(before, after, include_private=True)
    assert ("Fiche", "Contact : e-mail (privé)", "p@pau.fr", "new@pau.fr") in set(
        map(tuple, private.values))


def test_contributor_edit_keeps_private_email(store) -> None:
    payload, _ = moderation.published(store, "pau-sport")
    public = moderation.public_payload(payload, include_private=False)
    cat = storage.payload_catalogue(public)  # what a contributor's form holds
    cat.initiatives.loc[0, "summary"] = "Nouveau résumé"
    sub = moderation.submit_edit(store, ALICE, cat, base_version=1)
    proposal = moderation.get_proposal(store, ALICE, sub.proposal_id)
    assert "contact_email" not in proposal.payload["initiatives"][0]
    # the moderator's diff does not show the hidden e-mail as removed (nor leak it)
    diff = moderation.diff(payload, proposal.payload, include_private=True)
    assert list(diff["Champ"]) == ["Résumé"]
    moderation.publish(store, MOD, sub.proposal_id)
    row = store.load_catalogue().initiatives.set_index("id").loc["pau-sport"]
    assert row["contact_email"] == "p@pau.fr" and row["summary"] == "Nouveau résumé"
    with pytest.raises(Exception, match="introuvable"):
        moderation.get_proposal(store, BOB, sub.proposal_id)  # not Bob's


def test_validation_is_the_import_rules(store, tiny_layers) -> None:
    index = TerritoryIndex.from_layers(tiny_layers)
    bad = fiche(maturity="adulte")
    bad.territories.loc[0, "code"] = "99999"
    bad.organisations.loc[0, "siret"] = "123"
    before = snapshot(store)
    with pytest.raises(ValidationError) as info:
        moderation.submit_new(store, ALICE, bad, index=index)
    assert snapshot(store) == before
    fields = moderation.problems_by_field(info.value.problems)
    assert "valeur inconnue" in fields["initiatives.maturity"][0]
    assert "code de territoire inconnu" in fields["territories.code"][0]
    assert fields["territories.code"][0].startswith("ligne 1 :")
    assert "SIRET" in fields["organisations.siret"][0]
    long = fiche(summary="x" * (moderation.MAX_TEXT + 1))
    with pytest.raises(ValidationError, match="trop long"):
        moderation.submit_new(store, ALICE, long)


def test_pending_ids_and_masked_identities(store) -> None:
    moderation.submit_new(store, ALICE, fiche())
    assert moderation.pending_ids(store) == {"lecture-lac"}
    assert moderation.mask_identity("alice@ex.org") == "a…@ex.org"
    assert moderation.mask_identity("import") == "import"
    assert moderation.mask_identity("sub:123") == "compte sans e-mail"
    history = moderation.versions(store, "pau-sport")
    assert moderation.history_table(history)["Auteur"].tolist() == ["import"]


def test_new_id_and_prepare() -> None:
    assert moderation.new_id("Lire à Cenon !", ["lire-a-cenon"]) == "lire-a-cenon-2"
    assert moderation.new_id("", []) == "initiative"
    cat = fiche()
    blank = pd.DataFrame([{c: None for c in cat.indicators.columns}])
    cat.indicators = pd.concat([cat.indicators, blank], ignore_index=True)
    ready = moderation.prepare(cat)
    assert len(ready.indicators) == len(cat.indicators) - 1  # blank editor row dropped
    assert list(ready.funding["year_end"]) == [2024]


WRITES = {
    "submit_new": (lambda s, u: moderation.submit_new(s, u, fiche()), "contributeur"),
    "submit_edit": (lambda s, u: moderation.submit_edit(s, u, _edit(s, "T"), 1),
                    "contributeur"),
    "publish": (lambda s, u: moderation.publish(s, u, 1), "moderateur"),
    "reject": (lambda s, u: moderation.reject(s, u, 1, "non"), "moderateur"),
    "restore": (lambda s, u: moderation.restore(s, u, "pau-sport", 1, 1), "moderateur"),
    "queue": (lambda s, u: moderation.queue(s, u), "moderateur"),
    "audit_log": (lambda s, u: moderation.audit_log(s, u), "admin"),
    "grant": (lambda s, u: auth.grant(s, u, "x@ex.org", "admin"), "admin"),
    "revoke": (lambda s, u: auth.revoke(s, u, "mod@ex.org"), "admin"),
}


@pytest.mark.parametrize("name", list(WRITES))
def test_every_write_checks_the_role_and_writes_nothing(store, name: str) -> None:
    call, needed = WRITES[name]
    auth.grant(store, CLI_USER, "mod@ex.org", "moderateur")
    moderation.submit_new(store, ALICE, fiche())  # proposal n° 1, pending
    before = snapshot(store)
    below = [ANONYMOUS, ALICE, MOD][:auth.ROLES.index(needed)]
    assert below
    for user in below:
        with pytest.raises(PermissionDeniedError):
            call(store, user)
        assert snapshot(store) == before, user
    enough = {"contributeur": BOB, "moderateur": MOD, "admin": ADMIN}[needed]
    call(store, enough)  # the same call with the right role goes through


def test_audit_log_records_who_did_what(store) -> None:
    sub = moderation.submit_new(store, ALICE, fiche())
    moderation.publish(store, MOD, sub.proposal_id)
    auth.grant(store, ADMIN, "bob@ex.org", "moderateur")
    log = moderation.audit_log(store, ADMIN)
    actions = list(zip(log["Qui"], log["Action"], log["Cible"], strict=True))
    assert actions[:3] == [("admin@ex.org", "Rôle donné", "bob@ex.org"),
                           ("mod@ex.org", "Publication", "lecture-lac"),
                           ("alice@ex.org", "Proposition", "lecture-lac")]
    assert "Import" in set(log["Action"])


def test_contributor_batch_bounds_name_file_line_and_value(store, tmp_path) -> None:
    """The 6th fiche of a file (sheet line 7) with a summary too long: the problem names the
    file, line 7 (not 2) and the start of the value."""
    from territoires.catalogue import export, reading

    cat = make_catalogue([initiative(f"y{k}", [("commune", "33119")]) for k in range(5)]
                         + [initiative("z", [("commune", "33119")], summary="s" * 25_000)])
    path = tmp_path / "lot.xlsx"
    path.write_bytes(export.export_bytes(cat, "xlsx"))
    read, _ = reading.read_exchange(path)
    before = snapshot(store)
    with pytest.raises(ValidationError) as info:
        moderation.submit_batch(store, ALICE, [(read.subset(["z"]), None)], file="lot.xlsx")
    assert snapshot(store) == before
    (p,) = info.value.problems
    assert (p.file, p.sheet, p.line, p.column) == ("lot.xlsx", "initiatives", 7, "summary")
    assert p.value == "s" * 60 + "…"


def test_form_and_import_apply_the_same_bounds(store) -> None:
    """A fiche the import accepts can be saved from the form unchanged, and the reverse:
    one rule set (texts, rows per fiche) in validation.validate."""
    from territoires.catalogue import validation

    big = fiche(title="T" * 600, summary="s" * 25_000)
    big.territories = pd.DataFrame([{"initiative_id": "lecture-lac", "level": "commune",
                                     "code": f"{33000 + k:05d}"} for k in range(250)])
    form = moderation.check(moderation.prepare(big), None)
    assert form == validation.validate(moderation.prepare(big), None)
    assert {(p.sheet, p.column) for p in form} == {
        ("initiatives", "title"), ("initiatives", "summary"),
        ("territoires", "initiative_id")}
    limit = fiche(title="T" * moderation.MAX_SHORT_TEXT, summary="s" * moderation.MAX_TEXT)
    assert moderation.check(moderation.prepare(limit), None) == []
    assert validation.validate(moderation.prepare(limit), None) == []
