"""Tests of identities and roles (territoires.catalogue.auth)."""

from __future__ import annotations

import threading

import pytest

from territoires.catalogue import auth
from territoires.catalogue.auth import ANONYMOUS, CLI_USER, User
from territoires.errors import ConfigError, PermissionDeniedError, TerritoiresError


def test_roles_are_ordered() -> None:
    assert auth.ROLES == ("anonyme", "contributeur", "moderateur", "admin")
    mod = User("m@x.fr", "moderateur")
    assert mod.at_least("contributeur") and mod.at_least("moderateur")
    assert not mod.at_least("admin")
    assert not ANONYMOUS.at_least("contributeur")
    assert not User("x@x.fr", "inconnu").at_least("contributeur")  # unknown role = anonymous


def test_require_french_messages() -> None:
    auth.require(User("a@x.fr", "admin"), "moderateur")
    with pytest.raises(PermissionDeniedError, match="Connexion nécessaire"):
        auth.require(ANONYMOUS, "contributeur")
    with pytest.raises(PermissionDeniedError, match=r"Contributeur.*modérateur"):
        auth.require(User("c@x.fr", "contributeur"), "moderateur")
    assert issubclass(PermissionDeniedError, TerritoiresError)


def test_identity_key() -> None:
    assert auth.identity_key(" Alice@Example.FR ", "123") == "alice@example.fr"
    assert auth.identity_key(None, "abc") == "sub:abc"
    assert auth.identity_key("pas-un-mail", "abc") == "sub:abc"
    assert auth.identity_key(None, None) is None
    assert auth.normalize_key("Bob@Ex.org") == "bob@ex.org"
    with pytest.raises(ConfigError, match="invalide"):
        auth.normalize_key("<script>@x")


def test_grant_list_revoke(store_factory, monkeypatch) -> None:
    store = store_factory()
    store.create_or_upgrade()
    print(auth.grant(store, CLI_USER, "Admin@Ex.org", "admin"))
    admin = auth.resolve_user(store, email="admin@ex.org", subject="1", name="Ada")
    assert admin.role == "admin" and admin.name == "Ada"
    assert "moderateur" in auth.grant(store, admin, "mod@ex.org", "moderateur")
    assert "déjà" in auth.grant(store, admin, "mod@ex.org", "moderateur")
    assert [u["key"] for u in auth.list_users(store, admin)] == ["admin@ex.org", "mod@ex.org"]
    assert auth.list_users(store, admin)[1]["granted_by"] == "admin@ex.org"
    # default role of a signed-in identity without a row
    assert auth.resolve_user(store, email="new@ex.org", subject="9").role == "contributeur"
    monkeypatch.setenv("TERRITOIRES_OPEN_CONTRIBUTION", "0")
    assert auth.resolve_user(store, email="new@ex.org", subject="9").role == "anonyme"
    assert auth.resolve_user(store, email=None, subject=None) == ANONYMOUS
    with pytest.raises(ConfigError, match="Rôle inconnu"):
        auth.grant(store, admin, "x@ex.org", "roi")
    with pytest.raises(PermissionDeniedError, match="seul administrateur"):
        auth.revoke(store, admin, "admin@ex.org")
    assert "retiré" in auth.revoke(store, admin, "mod@ex.org")
    assert "aucun rôle" in auth.revoke(store, admin, "mod@ex.org")
    assert [u["key"] for u in auth.list_users(store, admin)] == ["admin@ex.org"]


@pytest.mark.parametrize("who", [ANONYMOUS, User("c@ex.org", "contributeur"),
                                 User("m@ex.org", "moderateur")])
def test_role_management_needs_admin(store_factory, who: User) -> None:
    store = store_factory()
    store.create_or_upgrade()
    auth.grant(store, CLI_USER, "admin@ex.org", "admin")
    before = auth.list_users(store, CLI_USER)
    for call in (lambda: auth.grant(store, who, "z@ex.org", "admin"),
                 lambda: auth.revoke(store, who, "admin@ex.org"),
                 lambda: auth.list_users(store, who)):
        with pytest.raises(PermissionDeniedError):
            call()
    assert auth.list_users(store, CLI_USER) == before


def _admins(store) -> list[str]:
    return [u["key"] for u in auth.list_users(store, CLI_USER) if u["role"] == "admin"]


def test_demoted_admin_acting_on_a_stale_snapshot_is_refused(store_factory) -> None:
    """The actor's role is read again in the transaction: an admin demoted (or revoked)
    since its page run resolved its role can no longer demote the admin who did it."""
    store = store_factory()
    store.create_or_upgrade()
    for key in ("a@ex.fr", "b@ex.fr", "c@ex.fr"):
        auth.grant(store, CLI_USER, key, "admin")
    a, b, c = (auth.resolve_user(store, email=key, subject=None)
               for key in ("a@ex.fr", "b@ex.fr", "c@ex.fr"))
    assert a.role == b.role == c.role == "admin"
    auth.grant(store, a, "b@ex.fr", "contributeur")  # A demotes B
    auth.revoke(store, a, "c@ex.fr")  # and revokes C (its row is gone)
    before = auth.list_users(store, CLI_USER)
    with pytest.raises(PermissionDeniedError, match=r"Contributeur.*administrateur"):
        auth.grant(store, b, "a@ex.fr", "contributeur")  # B's click, same page run
    with pytest.raises(PermissionDeniedError, match="administrateur"):
        auth.revoke(store, c, "a@ex.fr")
    with pytest.raises(PermissionDeniedError):
        auth.grant(store, c, "c@ex.fr", "admin")
    assert auth.list_users(store, CLI_USER) == before
    assert _admins(store) == ["a@ex.fr"]


def test_two_admins_revoking_themselves_at_once_leave_one(store_factory,
                                                          monkeypatch) -> None:
    """B revokes itself right after A's "another admin is left" check passed, while A
    revokes itself: B waits for A's transaction, then sees it is the last admin."""
    store = store_factory()
    store.create_or_upgrade()
    auth.grant(store, CLI_USER, "a@ex.fr", "admin")
    auth.grant(store, CLI_USER, "b@ex.fr", "admin")
    a = auth.resolve_user(store, email="a@ex.fr", subject=None)
    b = auth.resolve_user(store, email="b@ex.fr", subject=None)
    outcome: dict[str, object] = {}

    def b_revokes_itself() -> None:
        try:
            outcome["b"] = auth.revoke(store, b, "b@ex.fr")
        except Exception as exc:  # checked below
            outcome["b"] = exc

    other = threading.Thread(target=b_revokes_itself)
    check = auth._keep_one_admin

    def interleaved(conn, st, key) -> None:
        check(conn, st, key)  # A's check passes: B is still an admin
        if threading.current_thread() is not other and not other.is_alive() \
                and "b" not in outcome:
            other.start()
            other.join(timeout=1.5)  # B runs meanwhile (or waits for A's lock)

    monkeypatch.setattr(auth, "_keep_one_admin", interleaved)
    assert "retiré" in auth.revoke(store, a, "a@ex.fr")
    other.join(timeout=30)
    assert isinstance(outcome["b"], PermissionDeniedError), outcome
    assert "seul administrateur" in str(outcome["b"])
    assert _admins(store) == ["b@ex.fr"]


def test_users_cli(tmp_path, capsys) -> None:
    from territoires import cli

    db = f"sqlite:///{tmp_path / 'u.sqlite'}"
    assert cli.main(["users", "list", "--db", db]) == 0
    assert "Aucun rôle" in capsys.readouterr().out
    assert cli.main(["users", "grant", "Chef@Ville.fr", "admin", "--db", db]) == 0
    assert "Rôle admin donné à chef@ville.fr" in capsys.readouterr().out
    assert cli.main(["users", "grant", "mod@ville.fr", "moderateur", "--db", db]) == 0
    capsys.readouterr()
    assert cli.main(["users", "list", "--db", db]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:2] for line in out] == [["chef@ville.fr", "admin"],
                                                      ["mod@ville.fr", "moderateur"]]
    assert "donné par cli" in out[0]
    assert cli.main(["users", "revoke", "mod@ville.fr", "--db", db]) == 0
    assert "retiré" in capsys.readouterr().out
    assert cli.main(["users", "grant", "pas un mail", "admin", "--db", db]) == 2
    assert "Adresse e-mail invalide" in capsys.readouterr().err


def test_local_trial_secrets_point_to_the_local_provider() -> None:
    """scripts/try_contribution.py writes an [auth] section st.login accepts."""
    import importlib.util
    import tomllib
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "try_contribution.py"
    spec = importlib.util.spec_from_file_location("try_contribution", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    section = tomllib.loads(module.secrets_toml(8501, 9400))["auth"]
    assert section["redirect_uri"] == "http://127.0.0.1:8501/oauth2callback"
    assert section["server_metadata_url"] == \
        "http://127.0.0.1:9400/.well-known/openid-configuration"
    assert len(section["cookie_secret"]) >= 32
    assert module.secrets_toml(8501, 9400) != module.secrets_toml(8501, 9400)  # fresh secret
    example = tomllib.loads((path.parents[1] / ".streamlit" / "secrets.toml.example")
                            .read_text(encoding="utf-8"))["auth"]
    assert {"redirect_uri", "cookie_secret", "client_id", "client_secret",
            "server_metadata_url"} <= set(example)
    assert "CHANGE-ME" in example["client_secret"]  # never a real secret
