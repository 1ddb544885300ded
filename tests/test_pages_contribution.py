"""AppTest runs of the contribution pages (Proposer, Modifier, Modération, Mes propositions,
Administration) and of the Fiche's history, with users faked through ``AppTest.user``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_env import make_env
from apptest_support import drawn_widgets, rerun_with_only
from territoires.app import forms
from territoires.catalogue import auth, moderation, storage
from territoires.catalogue.auth import CLI_USER
from territoires.pipeline.layers import Layers

APP = str(Path(__file__).resolve().parents[1] / "app.py")
#: Contributed text with every kind of markup: must be shown as text everywhere.
XSS = ('<script>alert("x")</script> "><img src=x onerror=alert(1)> Lire & \'écrire\' '
       '[lien](http://x.test) ![img](http://x.test/x.png)')
AUTH_SECRETS = {"redirect_uri": "http://127.0.0.1:8631/oauth2callback",
                "cookie_secret": "test-only-cookie-secret", "client_id": "territoires",
                "client_secret": "test-only", "server_metadata_url":
                "http://127.0.0.1:8630/.well-known/openid-configuration"}
USERS = {"alice": ("alice@ex.org", None), "bob": ("bob@ex.org", None),
         "mod": ("mod@ex.org", "moderateur"), "mod2": ("mod2@ex.org", "moderateur"),
         "admin": ("admin@ex.org", "admin")}


@pytest.fixture
def env(tmp_path: Path, tiny_layers: Layers, monkeypatch: pytest.MonkeyPatch) -> storage.Store:
    values = make_env(tmp_path, tiny_layers)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    store = storage.Store(values["TERRITOIRES_DATABASE_URL"])
    store.create_or_upgrade()
    for email, role in USERS.values():
        if role:
            auth.grant(store, CLI_USER, email, role)
    yield store
    store.dispose()


def _app(who: str | None = None, page: str | None = None, params: dict | None = None,
         signin: bool = True) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if signin:
        at.secrets["auth"] = AUTH_SECRETS
    if who:
        email = USERS[who][0]
        at.user = {"is_logged_in": True, "email": email, "sub": who, "name": who.title()}
    elif signin:
        at.user = {"is_logged_in": False}
    for key, value in (params or {}).items():
        at.query_params[key] = value
    if page:
        at.switch_page(page)
    return at


def _run(obj) -> AppTest:
    """Run an AppTest, or the AppTest of an element just interacted with."""
    at = obj.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _plain(text: object) -> str:
    """Text without Markdown escapes."""
    return str(text).replace("\\", "").replace("\u200b", "")


def _texts(at: AppTest) -> list[str]:
    out = []
    for kind in ("markdown", "title", "header", "subheader", "caption", "error", "warning", "info",
                 "success", "text"):
        out += [str(e.value) for e in getattr(at, kind)]
    return out


_RAW = re.compile(r"(?<!\\)<(script|img)|(?<!\\)\]\(http|(?<!\\)!\[")


def assert_no_markup(at: AppTest) -> None:
    """No Markdown-rendered element carries contributed markup unescaped (``st.text`` and
    data frames are plain text by construction)."""
    for kind in ("markdown", "title", "header", "subheader", "caption", "error", "warning", "info",
                 "success"):
        for e in getattr(at, kind):
            assert not _RAW.search(str(e.value)), (kind, e.value)


def _key(at: AppTest, name: str, prefix: str = "fx_new_") -> str:
    """Key of a widget of the form as loaded last (each load has its own keys)."""
    return forms.widget_key(prefix, name, at.session_state)


def _fill_new(at: AppTest, title: str) -> None:
    # communes are offered once searched (the list holds régions and départements only)
    _run(at.text_input(key=_key(at, "tsearch")).input("33119"))
    at.text_input(key=_key(at, "title")).input(title)
    at.multiselect(key=_key(at, "themes")).select("culture")
    territories = at.multiselect(key=_key(at, "territories"))
    territories.select(next(o for o in territories.options if "33119" in o))
    at.text_area(key=_key(at, "summary")).input(XSS)


def test_without_sign_in_configured_pages_say_how_to_enable(env) -> None:
    at = _run(_app(signin=False, page="pages/proposer.py"))
    assert any("secrets.toml.example" in i.value for i in at.info)
    assert any("Consultation seule" in c.value for c in at.caption)
    assert not [b for b in at.button if b.label == "Se connecter"]
    at = _run(_app(signin=False, page="pages/moderation.py"))
    assert any("pas activée" in i.value for i in at.info)


def test_anonymous_is_asked_to_sign_in(env) -> None:
    at = _run(_app(page="pages/proposer.py"))
    assert any("Connectez-vous" in i.value for i in at.info)
    assert [b for b in at.button if b.label == "Se connecter"]
    assert not at.text_input  # no form at all


def test_contributor_proposes_then_moderator_publishes(env) -> None:
    at = _run(_app("alice", "pages/proposer.py"))
    assert "Modération" not in " ".join(str(x.label) for x in at.get("page_link"))
    assert any("Contributeur" in t.value for t in at.text)
    _fill_new(at, XSS)
    _run(at.button(key="fx_new_send").click())
    assert any("attend la validation" in _plain(s.value) for s in at.success), _texts(at)
    assert at.text_input(key=_key(at, "title")).value == ""  # form cleared after success
    pending = moderation.queue(env, auth.User("mod@ex.org", "moderateur"))
    assert [p.title for p in pending] == [XSS]
    assert XSS not in set(env.load_catalogue().initiatives["title"])  # not published yet
    assert_no_markup(at)

    mine = _run(_app("alice", "pages/mes-propositions.py"))
    assert mine.dataframe[0].value.iloc[0]["Statut"] == "En attente de modération"

    mod = _run(_app("mod", "pages/moderation.py"))
    assert any("1 proposition en attente" in m.value for m in mod.markdown)
    diff = mod.dataframe[1].value
    assert XSS in set(diff["Après"])  # the diff shows the raw text, as text
    assert_no_markup(mod)
    _run(mod.button(key="mod_publish").click())
    assert any("publiée (version 1)" in _plain(s.value) for s in mod.success), _texts(mod)
    assert XSS in set(env.load_catalogue().initiatives["title"])

    mine = _run(_app("alice", "pages/mes-propositions.py"))
    assert mine.dataframe[0].value.iloc[0]["Statut"] == "Publiée"


def test_validation_messages_next_to_fields_and_typed_values_kept(env) -> None:
    at = _run(_app("alice", "pages/proposer.py"))
    at.text_area(key=_key(at, "summary")).input("Mon résumé")
    _run(at.button(key="fx_new_send").click())
    errors = [_plain(e.value) for e in at.error]
    assert any("champ obligatoire vide" in e for e in errors), errors
    assert any("n'est pas enregistrée" in e for e in errors)
    assert any(e.startswith("Champs à corriger") and "Titre" in e for e in errors)
    assert at.text_area(key=_key(at, "summary")).value == "Mon résumé"  # kept
    assert moderation.queue(env, auth.User("m", "moderateur")) == []


def test_same_title_twice_gets_two_identifiers(env) -> None:
    for who in ("alice", "bob"):
        at = _run(_app(who, "pages/proposer.py"))
        _fill_new(at, "Même titre")
        _run(at.button(key="fx_new_send").click())
    ids = [p.initiative_id for p in moderation.queue(env, auth.User("m", "moderateur"))]
    assert ids == ["meme-titre", "meme-titre-2"]


def test_reject_with_reason_seen_by_author(env) -> None:
    at = _run(_app("alice", "pages/proposer.py"))
    _fill_new(at, "Fiche à refuser")
    _run(at.button(key="fx_new_send").click())
    mod = _run(_app("mod", "pages/moderation.py"))
    _run(mod.button(key="mod_reject").click())
    assert any("raison" in _plain(e.value) for e in mod.error)  # a reason is required
    mod.text_area(key="mod_reason").input(f"Doublon {XSS}")
    _run(mod.button(key="mod_reject").click())
    assert any("refusée" in _plain(s.value) for s in mod.success), _texts(mod)
    mine = _run(_app("alice", "pages/mes-propositions.py"))
    row = mine.dataframe[0].value.iloc[0]
    assert row["Statut"] == "Refusée" and row["Raison / commentaire du modérateur"] == \
        f"Doublon {XSS}"
    assert_no_markup(mine)


def test_two_editors_second_save_refused_and_typed_text_kept(env) -> None:
    first = _run(_app("mod", "pages/modifier.py", {"id": "pau-sport"}))
    second = _run(_app("mod2", "pages/modifier.py", {"id": "pau-sport"}))
    prefix = "fx_edit_pau-sport_"
    first.text_input(key=_key(first, "title", prefix)).input("Titre du premier")
    _run(first.button(key="fx_edit_pau-sport_send").click())
    assert any("Fiche publiée (version 2)" in _plain(s.value) for s in first.success), _texts(first)
    key = _key(second, "title", prefix)
    second.text_input(key=key).input("Titre du second")
    _run(second.button(key="fx_edit_pau-sport_send").click())
    assert any("Conflit de modification" in _plain(e.value) for e in second.error), _texts(second)
    assert second.text_input(key=key).value == "Titre du second"  # what they typed is kept
    assert any("en haut de la page" in _plain(e.value) for e in second.error)  # by the button
    assert env.load_catalogue().initiatives.set_index("id").loc["pau-sport",
                                                               "title"] == "Titre du premier"
    diff = second.dataframe[0].value
    assert ("Titre", "Titre du premier", "Titre du second") in set(
        zip(diff["Champ"], diff["Avant"], diff["Après"], strict=True))
    _run(second.button(key="fx_edit_pau-sport_rebase").click())  # re-apply on version 2
    assert second.text_input(key=key).value == "Titre du second"
    _run(second.button(key="fx_edit_pau-sport_send").click())
    assert any("version 3" in _plain(s.value) for s in second.success), _texts(second)


def _open_history(at: AppTest) -> AppTest:
    """The Fiche's versions, drawn once their expander is opened."""
    assert not any("Version" in d.value.columns for d in at.dataframe)  # closed: not drawn
    at.session_state[forms.HISTORY_KEY] = True
    return _run(at)


def test_fiche_history_diff_restore_and_private_email(env) -> None:
    mod = auth.User("mod@ex.org", "moderateur")
    payload, _ = moderation.published(env, "lac-lecture")
    cat = storage.payload_catalogue(payload)
    cat.initiatives.loc[0, "maturity"] = "deploiement"
    cat.initiatives.loc[0, "contact_email"] = "prive@lac.fr"
    cat.initiatives.loc[0, "summary"] = XSS
    moderation.submit_edit(env, mod, cat, 1)
    anon = _run(_app(None, "pages/fiche.py", {"id": "lac-lecture"}))
    assert any("Émergence" in t.value and "Déploiement" in t.value for t in anon.text)
    anon = _open_history(anon)
    assert not any("prive@lac.fr" in t for t in _texts(anon))
    history = next(d.value for d in anon.dataframe if "Version" in d.value.columns)
    assert list(history["Version"]) == [2, 1]
    assert history.iloc[0]["Auteur"] == "m…@ex.org"  # e-mails masked for the public
    compare = next(d.value for d in anon.dataframe if "Champ" in d.value.columns)
    assert XSS in set(compare["Après"])
    assert "Contact : e-mail (privé)" not in set(compare["Champ"])
    assert not [s for s in anon.selectbox if s.key == "hist_restore"]
    assert_no_markup(anon)
    at = _open_history(_run(_app("mod", "pages/fiche.py", {"id": "lac-lecture"})))
    assert any("prive@lac.fr" in t.value for t in at.text)
    history = next(d.value for d in at.dataframe if "Version" in d.value.columns)
    assert history.iloc[0]["Auteur"] == "mod@ex.org"
    assert [p for p in at.get("page_link") if "Modifier" in str(p.label)]
    _run(at.selectbox(key="hist_restore").select(1))
    _run(at.button(key="hist_restore_btn").click())
    assert any("Version 1 restaurée" in _plain(s.value) for s in at.success), _texts(at)
    assert moderation.versions(env, "lac-lecture")[-1].kind == "restore"


def test_restore_refused_when_a_version_was_published_after_the_history_was_shown(
        env) -> None:
    """The restore's base version is the latest one the moderator was shown, not the latest
    one when the click's run reads the history again: a version published meanwhile gives
    the conflict message and is kept; once shown, the restore goes through."""
    mod2 = auth.User("mod2@ex.org", "moderateur")

    def publish_summary(text: str) -> None:
        payload, version = moderation.published(env, "lac-lecture")
        cat = storage.payload_catalogue(payload)
        cat.initiatives.loc[0, "summary"] = text
        moderation.submit_edit(env, mod2, cat, version)

    publish_summary("Deuxième version")
    at = _open_history(_run(_app("mod", "pages/fiche.py", {"id": "lac-lecture"})))
    history = next(d.value for d in at.dataframe if "Version" in d.value.columns)
    assert list(history["Version"]) == [2, 1]  # what the moderator is looking at
    _run(at.selectbox(key="hist_restore").select(1))
    publish_summary("Troisième version, jamais montrée")  # published meanwhile
    _run(at.button(key="hist_restore_btn").click())
    assert any("Conflit de modification" in _plain(e.value) for e in at.error), _texts(at)
    assert [(v.version, v.kind) for v in moderation.versions(env, "lac-lecture")][-1] == (
        3, "edit")  # version 3 kept, nothing restored over it
    history = next(d.value for d in at.dataframe if "Version" in d.value.columns)
    assert list(history["Version"]) == [3, 2, 1]  # now shown: restoring starts from it
    _run(at.selectbox(key="hist_restore").select(1))
    _run(at.button(key="hist_restore_btn").click())
    assert any("Version 1 restaurée (nouvelle version 4)" in _plain(s.value)
               for s in at.success), _texts(at)
    assert moderation.versions(env, "lac-lecture")[-1].kind == "restore"


def test_administration_roles_and_audit_log(env) -> None:
    at = _run(_app("mod", "pages/administration.py"))
    assert any("réservée" in w.value for w in at.warning)
    at = _run(_app("admin", "pages/administration.py"))
    roles = at.dataframe[0].value
    assert "mod@ex.org" in set(roles["E-mail ou identifiant"])
    at.text_input(key="adm_email").input("bob@ex.org")
    at.selectbox(key="adm_role").select("moderateur")
    _run(at.button(key="adm_grant").click())
    assert any("Rôle moderateur donné à bob@ex.org" in _plain(s.value) for s in at.success)
    log = at.dataframe[1].value
    assert "Rôle donné" in set(log["Action"])
    assert auth.stored_role(env, "bob@ex.org") == "moderateur"


def test_menu_follows_the_role(env) -> None:
    def labels(at: AppTest) -> set[str]:
        return {str(p.label) for p in at.get("page_link")}

    anon = labels(_run(_app(None)))
    assert "Proposer une initiative" in anon and "Modération" not in anon
    contrib = labels(_run(_app("alice")))
    assert "Mes propositions" in contrib and "Modération" not in contrib
    admin = labels(_run(_app("admin")))
    assert {"Modération", "Administration", "Mes propositions"} <= admin


def test_loaded_fiche_survives_a_rerun_before_the_browser_drew_the_form(env) -> None:
    """A user who types the title and presses Enter before the browser has drawn the rest of
    the form (its widgets load lazily) makes a rerun that carries the title only. The other
    fields must still show the fiche when the browser draws them: the fiche's values were
    pushed to the browser in the first run only, so it drew the themes, the territories empty
    and the maturity « Émergence »; publishing was then refused (« Thèmes ») or changed the
    maturity."""
    at = _run(_app("mod", "pages/modifier.py", {"id": "pau-sport"}))
    loaded = drawn_widgets(at)
    assert loaded["multiselect:Thèmes (au moins un)"] == ["Sport"]  # the fiche is in the form
    assert loaded["selectbox:Maturité"] == "Essaimage / pérennisation"
    title = next(n for n in at.text_input if n.label == "Titre de l'initiative")
    title.input("Sport à Pau, relu")
    at = rerun_with_only(at, [title])  # the browser had drawn the title only
    assert next(n for n in at.text_input if n.label == title.label).value == \
        "Sport à Pau, relu"
    shown = drawn_widgets(at)
    for values in (shown, loaded):
        values.pop(f"text_input:{title.label}")  # the browser shows what was typed there
    assert shown == loaded
