"""Identity and roles: who may read, propose, moderate and administer the catalogue.

Roles, from least to most: ``anonyme`` (not signed in: reads the published catalogue),
``contributeur`` (proposes new fiches and changes), ``moderateur`` (publishes, rejects,
restores, sees private contact e-mails), ``admin`` (manages roles, reads the audit log, and
everything else).

Roles live in the database (table ``users``), keyed by the identity's lower-cased e-mail, or
``sub:<subject>`` when the provider gives no e-mail. A signed-in identity without a row is a
``contributeur`` (its proposals wait for a moderator), unless ``TERRITOIRES_OPEN_CONTRIBUTION``
is ``0``: then only identities granted a role may contribute.

The identity comes from ``st.user`` in :mod:`territoires.app.ui` only; core functions receive a
plain :class:`User` and call :func:`require` themselves (never trust a hidden button).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, replace

import sqlalchemy as sa

from territoires.catalogue.storage import Store
from territoires.errors import ConfigError, PermissionDeniedError

ANONYMOUS_ROLE = "anonyme"
#: Roles in increasing order of rights.
ROLES: tuple[str, ...] = (ANONYMOUS_ROLE, "contributeur", "moderateur", "admin")
#: Roles that can be granted (stored in ``users``).
GRANTABLE: tuple[str, ...] = ROLES[1:]
ROLE_LABELS: dict[str, str] = {
    "anonyme": "Lecteur (non connecté)",
    "contributeur": "Contributeur",
    "moderateur": "Modérateur",
    "admin": "Administrateur",
}
_ACTIONS: dict[str, str] = {
    "contributeur": "proposer une fiche ou une modification",
    "moderateur": "modérer, publier ou restaurer une fiche",
    "admin": "gérer les rôles et lire le journal",
}
_EMAIL_RE = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")
MAX_KEY = 320


@dataclass(frozen=True)
class User:
    """Who acts: ``key`` (e-mail or ``sub:…``; None when anonymous), display name, role."""

    key: str | None
    role: str = ANONYMOUS_ROLE
    name: str | None = None
    email: str | None = None

    @property
    def is_authenticated(self) -> bool:
        """True once signed in."""
        return self.key is not None

    def at_least(self, role: str) -> bool:
        """True if this user's role is ``role`` or above."""
        return rank(self.role) >= rank(role)

    @property
    def label(self) -> str:
        """Name shown in the app (name, else e-mail, else key)."""
        return self.name or self.email or self.key or "anonyme"


ANONYMOUS = User(key=None)
#: The command line (whoever can run it can write the database directly).
CLI_USER = User(key="cli", role="admin", name="ligne de commande")


def rank(role: str) -> int:
    """Position of ``role`` in :data:`ROLES` (unknown roles rank as anonymous)."""
    return ROLES.index(role) if role in ROLES else 0


def require(user: User, role: str) -> None:
    """Raise :class:`PermissionDeniedError` (French) unless ``user`` has ``role`` or above."""
    if user.at_least(role):
        return
    action = _ACTIONS.get(role, "faire cette action")
    if not user.is_authenticated:
        raise PermissionDeniedError(
            f"Connexion nécessaire pour {action} : connectez-vous (bouton « Se connecter » "
            "du menu). Rien n'a été enregistré.")
    raise PermissionDeniedError(
        f"Votre rôle ({ROLE_LABELS.get(user.role, user.role)}) ne permet pas de {action} : "
        f"il faut être {ROLE_LABELS[role].lower()}. Rien n'a été enregistré.")


def normalize_key(value: str) -> str:
    """The users-table key of an e-mail (lower-cased) or of ``sub:…``; French error if it is
    neither."""
    key = str(value or "").strip()
    if key.startswith("sub:") and 4 < len(key) <= MAX_KEY:
        return key
    key = key.lower()
    if not _EMAIL_RE.match(key) or len(key) > MAX_KEY:
        raise ConfigError(f"Adresse e-mail invalide : « {value} » (attendu nom@domaine.fr, "
                          "ou sub:IDENTIFIANT pour un compte sans e-mail).")
    return key


def identity_key(email: str | None, subject: str | None) -> str | None:
    """Key of a signed-in identity: its e-mail if any, else ``sub:<subject>``."""
    if email and _EMAIL_RE.match(str(email).strip()):
        return str(email).strip().lower()[:MAX_KEY]
    if subject:
        return f"sub:{subject}"[:MAX_KEY]
    return None


def _open_contribution() -> bool:
    return os.environ.get("TERRITOIRES_OPEN_CONTRIBUTION", "1").strip() not in ("0", "non",
                                                                                  "false")


def stored_role(store: Store, key: str) -> str | None:
    """Role granted to ``key`` in the database, or None."""
    users = store.t["users"]
    return store.transaction("la lecture des rôles", lambda conn: conn.execute(
        sa.select(users.c.role).where(users.c.key == key)).scalar())


def resolve_user(store: Store, *, email: str | None, subject: str | None,
                 name: str | None = None) -> User:
    """The :class:`User` of a signed-in identity, with its role from the database."""
    key = identity_key(email, subject)
    if key is None:
        return ANONYMOUS
    role = stored_role(store, key)
    if role is None:
        role = "contributeur" if _open_contribution() else ANONYMOUS_ROLE
    clean_email = key if "@" in key else None
    return User(key=key, role=role, name=(str(name)[:200] if name else None), email=clean_email)


def grant(store: Store, actor: User, key: str, role: str) -> str:
    """Give ``role`` to ``key`` (admins only; the CLI acts as admin). French summary."""
    require(actor, "admin")
    key = normalize_key(key)
    if role not in GRANTABLE:
        raise ConfigError(f"Rôle inconnu : « {role} » ; rôles possibles : "
                          f"{', '.join(GRANTABLE)}.")
    users = store.t["users"]

    def write(conn: sa.Connection) -> str:
        _lock_roles(conn, store, actor)
        old = conn.execute(sa.select(users.c.role).where(users.c.key == key)).scalar()
        if old == role:
            return f"{key} a déjà le rôle {role}."
        if old is not None and old == "admin" and key == actor.key:
            _keep_one_admin(conn, store, key)
        values = {"role": role, "granted_by": actor.key or "?",
                  "granted_at": dt.datetime.now(dt.UTC)}
        if old is None:
            conn.execute(users.insert().values(key=key, **values))
        else:
            conn.execute(users.update().where(users.c.key == key).values(**values))
        store.audit(conn, actor.key or "?", "role_grant", key,
                    f"{old or 'aucun'} → {role}")
        return f"Rôle {role} donné à {key}" + (f" (avant : {old})." if old else ".")

    return store.transaction("l'attribution d'un rôle", write)


def _lock_roles(conn: sa.Connection, store: Store, actor: User) -> None:
    """Serialise role changes, then check that ``actor`` is still an admin in the database.

    First a write that changes nothing (each admin row set to itself): SQLite reserves its
    write lock, PostgreSQL locks the admin rows until the end of the transaction, so two
    role changes never both pass their checks on the same admins; the one that waits reads
    what the other wrote. Then the actor's role is read again: the :class:`User` was
    resolved when the page run began and may have been demoted since. A role change leaves
    the catalogue revision alone (no catalogue cache to reload).

    The command line acts as admin without a row. An actor without a row is refused once
    an admin exists (a revoked admin's row is deleted); before that (a fresh database) the
    caller's role is trusted.
    """
    users = store.t["users"]
    conn.execute(users.update().where(users.c.role == "admin").values(role=users.c.role))
    if actor.key == CLI_USER.key:
        return
    role = conn.execute(sa.select(users.c.role).where(users.c.key == actor.key)).scalar()
    if role is None:
        admins = conn.execute(sa.select(sa.func.count()).select_from(users).where(
            users.c.role == "admin")).scalar()
        if not admins:
            return
        role = "contributeur" if _open_contribution() else ANONYMOUS_ROLE
    require(replace(actor, role=role), "admin")


def _keep_one_admin(conn: sa.Connection, store: Store, key: str) -> None:
    users = store.t["users"]
    others = conn.execute(sa.select(sa.func.count()).select_from(users).where(
        (users.c.role == "admin") & (users.c.key != key))).scalar()
    if not others:
        raise PermissionDeniedError("Vous êtes le seul administrateur : nommez-en un autre "
                                    "avant de retirer le vôtre. Rien n'a été changé.")


def revoke(store: Store, actor: User, key: str) -> str:
    """Remove the role of ``key`` (back to the default for signed-in users)."""
    require(actor, "admin")
    key = normalize_key(key)
    users = store.t["users"]

    def write(conn: sa.Connection) -> str:
        _lock_roles(conn, store, actor)
        old = conn.execute(sa.select(users.c.role).where(users.c.key == key)).scalar()
        if old is None:
            return f"{key} n'a aucun rôle enregistré."
        if old == "admin" and key == actor.key:
            _keep_one_admin(conn, store, key)
        conn.execute(users.delete().where(users.c.key == key))
        store.audit(conn, actor.key or "?", "role_revoke", key, f"{old} → aucun")
        return f"Rôle {old} retiré à {key}."

    return store.transaction("le retrait d'un rôle", write)


def list_users(store: Store, actor: User) -> list[dict[str, object]]:
    """Every granted role (admins only), sorted by key."""
    require(actor, "admin")
    users = store.t["users"]
    return store.transaction("la lecture des rôles", lambda conn: [
        dict(r._mapping) for r in conn.execute(sa.select(users).order_by(users.c.key))])
