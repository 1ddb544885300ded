"""Streamlit glue of the contribution pages: the fiche form, moderation views, history.

A UI-support module (it imports streamlit); the logic lives in
:mod:`territoires.catalogue.moderation`
and :mod:`territoires.catalogue.auth`. Contributed text is only ever shown with ``st.text``,
``st.dataframe``/``st.data_editor`` (canvas grids), widget values, or Markdown made safe by
:func:`territoires.analysis.views.md_text` (escaped, autolinks broken): never as Markdown or HTML
source.

Form state lives in ``st.session_state`` under a prefix (``fx_new_``, ``fx_edit_<id>_``):
what the user typed survives a refused save (validation problems, edit conflict) so that it
can be corrected or re-applied.

A loaded fiche reaches the browser as each widget's default, under keys fresh to that load
(:func:`widget_key`), never by writing the widgets' state: Streamlit pushes a value written
that way to the browser once, in the run that wrote it, and a browser that reruns before it
has drawn the widget (the user presses Enter in the title while the rest of the form is still
loading) would then draw the field empty and send that back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from territoires.analysis import views
from territoires.app import ui
from territoires.catalogue import auth, model, moderation
from territoires.catalogue.storage import Store, catalogue_payload, payload_catalogue
from territoires.errors import ConflictError, Problem, TerritoiresError, ValidationError
from territoires.pipeline.territories import TerritoryIndex
from territoires.vocab import (
    ALLIANCE_LEVELS,
    FUNDER_TYPES,
    MATURITY,
    ORG_ROLES,
    ORG_TYPES,
    PUBLICS,
    SCALES,
    SCHEMES,
    TERRITORY_LEVELS,
    THEMES,
    Vocabulary,
)

#: Long text fields of the form (column, label).
TEXT_AREAS: list[tuple[str, str]] = [
    ("summary", "Résumé"),
    ("objectives", "Objectifs"),
    ("actions", "Actions"),
    ("results", "Résultats"),
    ("difficulties", "Difficultés"),
    ("lessons", "Enseignements"),
    ("outlook", "Perspectives"),
]
SHORT_TEXTS: list[tuple[str, str]] = [
    ("source_document", "Document source"),
    ("source_url", "Lien vers la source (https://…)"),
    ("contact_organisation", "Contact : structure"),
    ("contact_role", "Contact : fonction"),
]
MULTI: list[tuple[str, str, Vocabulary]] = [
    ("themes", "Thèmes (au moins un)", THEMES),
    ("publics", "Publics", PUBLICS),
    ("alliance_levels", "Niveaux d'alliance", ALLIANCE_LEVELS),
]
#: Columns of the editable tables: table -> [(column, French label)].
EDITOR_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "organisations": [("role", "Rôle"), ("name", "Nom"), ("type", "Type"),
                      ("siret", "SIRET (14 chiffres)")],
    "indicators": [("label", "Indicateur"), ("value", "Valeur"), ("unit", "Unité"),
                   ("year", "Année")],
    "funding": [("funder", "Financeur"), ("funder_type", "Type de financeur"),
                ("scheme", "Dispositif"), ("amount_eur", "Montant (€)"),
                ("year_start", "Année de début"), ("year_end", "Année de fin"),
                ("territory_level", "Niveau du territoire"),
                ("territory_code", "Code du territoire"), ("id", "Identifiant")],
}
_FLOAT = {"value", "amount_eur"}
_INT = {"year", "year_start", "year_end"}


# ------------------------------------------------------------------------------ state



#: Session counter of form loads: each load's widgets get keys no browser has seen.
_LOADS = "_fx_loads"


def _k(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def widget_key(prefix: str, name: str, state: Any = None) -> str:
    """Key of the form's widget ``name`` for the fiche loaded last under ``prefix`` (in
    ``state``, by default this session's state)."""
    state = st.session_state if state is None else state
    return f"{prefix}{name}@{state.get(_k(prefix, '_load'), 0)}"


def _loaded(prefix: str, name: str) -> Any:
    """The loaded fiche's value of field ``name`` (the widget's default)."""
    return (st.session_state.get(_k(prefix, "_values")) or {}).get(name)


def _value(prefix: str, name: str) -> Any:
    """What the form's field ``name`` holds: the widget's value once it has been drawn, the
    loaded value before."""
    key = widget_key(prefix, name)
    return st.session_state[key] if key in st.session_state else _loaded(prefix, name)


def form_loaded(prefix: str) -> bool:
    """True once :func:`load_form` filled the form's state."""
    return _k(prefix, "_loaded") in st.session_state


def load_form(prefix: str, payload: dict | None, base_version: int | None,
              index: Any) -> None:
    """Put a payload in the form (None: an empty new fiche): its values become the widgets'
    defaults, under widget keys new to this load (what was typed before is forgotten)."""
    clear_form(prefix)
    payload = payload or {name: [] for name in model.TABLE_COLUMNS}
    row = (payload.get("initiatives") or [{}])[0]
    state = st.session_state
    values: dict[str, Any] = {"title": row.get("title") or ""}
    for col, _label in [*TEXT_AREAS, *SHORT_TEXTS, ("contact_email", "")]:
        values[col] = row.get(col) or ""
    for col in ("start_date", "end_date"):
        value = row.get(col)
        values[col] = dt.date.fromisoformat(value[:10]) if value else None
    values["scale"] = row.get("scale")
    values["maturity"] = row.get("maturity") or "emergence"
    for col, _label, voc in MULTI:
        values[col] = [v for v in row.get(col) or [] if v in voc.items]
    pairs = [(r.get("level"), r.get("code")) for r in payload.get("territories") or []]
    values["territories"] = [index.label(lvl, code) for lvl, code in pairs]
    state[_LOADS] = state.get(_LOADS, 0) + 1
    state[_k(prefix, "_load")] = state[_LOADS]
    state[_k(prefix, "_values")] = values
    for name, cols in EDITOR_COLUMNS.items():
        state[_k(prefix, f"{name}_data")] = _editor_frame(name, payload.get(name) or [], cols)
    state[_k(prefix, "_row")] = row  # fields the form does not edit (source_sheet, id…)
    state[_k(prefix, "_base")] = base_version
    state[_k(prefix, "_problems")] = {}
    state[_k(prefix, "_loaded")] = True


def clear_form(prefix: str) -> None:
    """Forget everything typed in the form."""
    for key in [k for k in st.session_state if str(k).startswith(prefix)]:
        del st.session_state[key]


def base_version(prefix: str) -> int | None:
    """Published version the form started from (None for a new fiche)."""
    return st.session_state.get(_k(prefix, "_base"))


def _editor_frame(name: str, rows: list[dict], cols: list[tuple[str, str]]) -> pd.DataFrame:
    data: dict[str, pd.Series] = {}
    for col, _label in cols:
        values = [r.get(col) for r in rows]
        if col in _FLOAT:
            data[col] = pd.Series(values, dtype="float64")
        elif col in _INT:
            data[col] = pd.Series(values, dtype="Int64")
        else:
            data[col] = pd.Series(values, dtype="object")
    return pd.DataFrame(data)


# ------------------------------------------------------------------------------ widgets


def _problems(prefix: str) -> dict[str, list[str]]:
    return st.session_state.get(_k(prefix, "_problems")) or {}


def _field_problems(prefix: str, key: str) -> None:
    for message in _problems(prefix).get(key, []):
        st.error(views.md_text(message), icon=":material/error:")


def _table_problems(prefix: str, table: str) -> None:
    for key, messages in _problems(prefix).items():
        if key == table or key.startswith(f"{table}."):
            column = key.partition(".")[2]
            label = dict(EDITOR_COLUMNS.get(table, [])).get(column, column)
            for message in messages:
                text = f"{label} — {message}" if label else message
                st.error(views.md_text(text), icon=":material/error:")


def _select(prefix: str, col: str, label: str, voc: Vocabulary, optional: bool) -> None:
    # "" for "not filled in", not None: Streamlit sends a selectbox holding None to the
    # browser without its default, as if nothing were chosen
    options: list[str] = ([""] if optional else []) + voc.codes
    loaded = _loaded(prefix, col) or ""
    st.selectbox(label, options, index=options.index(loaded) if loaded in options else 0,
                 key=widget_key(prefix, col),
                 format_func=lambda c: voc.label_of(c) if c else "— non renseigné —")
    _field_problems(prefix, f"initiatives.{col}")


def fiche_form(prefix: str, data: ui.AppData, *, include_private: bool) -> None:
    """Draw every field of the fiche (state from :func:`load_form`); problems of the last
    refused save are shown under their field."""
    state = st.session_state
    general = [k for k in _problems(prefix) if k in ("initiatives", "initiatives.id")]
    for key in general:
        _field_problems(prefix, key)
    st.text_input("Titre de l'initiative", _loaded(prefix, "title"),
                  key=widget_key(prefix, "title"), max_chars=300)
    _field_problems(prefix, "initiatives.title")
    left, right = st.columns(2)
    with left:
        _select(prefix, "maturity", "Maturité", MATURITY, optional=False)
        _select(prefix, "scale", "Échelle", SCALES, optional=True)
    with right:
        st.date_input("Date de début", _loaded(prefix, "start_date"),
                      key=widget_key(prefix, "start_date"), format="DD/MM/YYYY",
                      min_value=dt.date(1980, 1, 1), max_value=dt.date(2100, 12, 31))
        _field_problems(prefix, "initiatives.start_date")
        st.date_input("Date de fin (si elle est connue)", _loaded(prefix, "end_date"),
                      key=widget_key(prefix, "end_date"), format="DD/MM/YYYY",
                      min_value=dt.date(1980, 1, 1), max_value=dt.date(2100, 12, 31))
        _field_problems(prefix, "initiatives.end_date")
    for col, label, voc in MULTI:
        st.multiselect(label, voc.codes, _loaded(prefix, col), format_func=voc.label_of,
                       key=widget_key(prefix, col), placeholder="Choisissez…")
        _field_problems(prefix, f"initiatives.{col}")
    _territories(prefix, data)
    for col, label in TEXT_AREAS:
        st.text_area(label, _loaded(prefix, col), key=widget_key(prefix, col),
                     max_chars=moderation.MAX_TEXT, height=100 if col == "summary" else 120)
        _field_problems(prefix, f"initiatives.{col}")
    st.header("Structures (porteurs et partenaires)")
    _editor(prefix, "organisations", {
        "role": st.column_config.SelectboxColumn("Rôle", options=ORG_ROLES.codes,
                                                 format_func=ORG_ROLES.label_of,
                                                 required=True),
        "name": st.column_config.TextColumn("Nom", required=True, max_chars=300),
        "type": st.column_config.SelectboxColumn("Type", options=ORG_TYPES.codes,
                                                 format_func=ORG_TYPES.label_of,
                                                 required=True),
        "siret": st.column_config.TextColumn("SIRET (14 chiffres)", max_chars=14),
    })
    st.header("Indicateurs de résultats")
    _editor(prefix, "indicators", {
        "label": st.column_config.TextColumn("Indicateur", required=True, max_chars=300),
        "value": st.column_config.NumberColumn("Valeur", required=True),
        "unit": st.column_config.TextColumn("Unité", max_chars=100),
        "year": st.column_config.NumberColumn("Année", min_value=1900, max_value=2100,
                                              step=1, format="%d"),
    })
    st.header("Financements")
    st.caption("Sans territoire indiqué, une ligne est rattachée au premier territoire de la "
               "fiche.")
    _editor(prefix, "funding", {
        "funder": st.column_config.TextColumn("Financeur", required=True, max_chars=300),
        "funder_type": st.column_config.SelectboxColumn(
            "Type de financeur", options=FUNDER_TYPES.codes,
            format_func=FUNDER_TYPES.label_of, required=True),
        "scheme": st.column_config.SelectboxColumn("Dispositif", options=SCHEMES.codes,
                                                   format_func=SCHEMES.label_of,
                                                   required=True),
        "amount_eur": st.column_config.NumberColumn("Montant (€)", min_value=0,
                                                    required=True, format="%.2f"),
        "year_start": st.column_config.NumberColumn("Année de début", min_value=1990,
                                                    max_value=2100, step=1, format="%d",
                                                    required=True),
        "year_end": st.column_config.NumberColumn("Année de fin", min_value=1990,
                                                  max_value=2100, step=1, format="%d"),
        "territory_level": st.column_config.SelectboxColumn(
            "Niveau du territoire", options=TERRITORY_LEVELS.codes,
            format_func=TERRITORY_LEVELS.label_of),
        "territory_code": st.column_config.TextColumn("Code du territoire", max_chars=40),
        "id": st.column_config.TextColumn("Identifiant", disabled=True),
    })
    st.header("Source et contact")
    for col, label in SHORT_TEXTS:
        st.text_input(label, _loaded(prefix, col), key=widget_key(prefix, col),
                      max_chars=moderation.MAX_SHORT_TEXT)
        _field_problems(prefix, f"initiatives.{col}")
    if include_private:
        st.text_input("Contact : e-mail (privé, vu seulement des modérateurs)",
                      _loaded(prefix, "contact_email"), key=widget_key(prefix, "contact_email"),
                      max_chars=320)
        _field_problems(prefix, "initiatives.contact_email")
    elif state.get(_k(prefix, "_base")) is not None:
        st.caption("L'e-mail de contact (privé) n'est visible que des modérateurs : il reste "
                   "inchangé.")


def _territories(prefix: str, data: ui.AppData) -> None:
    options, _lookup = ui._territory_options(data.geo)
    loaded = list(_loaded(prefix, "territories") or [])
    chosen = list(_value(prefix, "territories") or [])
    search = st.text_input("Chercher un territoire (nom ou code)",
                           key=widget_key(prefix, "tsearch"),
                           placeholder="Cenon, 33119, QN03307M, Gironde…")
    found: list[str] = []
    if search.strip():
        found = [str(x) for x in data.index.search(search.strip(), limit=30)["label"]]
    seen: set[str] = set()
    everything = [x for x in [*loaded, *chosen, *found, *options]
                  if not (x in seen or seen.add(x))]
    st.multiselect("Territoires de l'initiative (au moins un)", everything, loaded,
                   key=widget_key(prefix, "territories"),
                   placeholder="Tapez un nom ou un code…")
    _table_problems(prefix, "territories")


def _editor(prefix: str, table: str, config: dict[str, Any]) -> None:
    st.data_editor(st.session_state[_k(prefix, f"{table}_data")],
                   key=widget_key(prefix, table),
                   num_rows="dynamic", hide_index=True, width="stretch",
                   column_config=config, column_order=list(config))
    _table_problems(prefix, table)


# ------------------------------------------------------------------------------ reading back


def _edited(prefix: str, table: str) -> pd.DataFrame:
    """The editor's table with the user's edits applied (added, edited, deleted rows)."""
    base = st.session_state[_k(prefix, f"{table}_data")].copy()
    edits = st.session_state.get(widget_key(prefix, table)) or {}
    for pos, changes in (edits.get("edited_rows") or {}).items():
        for col, value in changes.items():
            base.loc[base.index[int(pos)], col] = value
    deleted = {base.index[int(i)] for i in edits.get("deleted_rows") or []}
    base = base.drop(index=list(deleted))
    added = pd.DataFrame(edits.get("added_rows") or [], columns=base.columns)
    return pd.concat([base, added], ignore_index=True) if len(added) else base


def form_catalogue(prefix: str, data: ui.AppData, initiative_id: str | None,
                   taken: set[str] | None = None) -> model.Catalogue:
    """The one-initiative catalogue typed in the form (``initiative_id`` None: a new id is
    derived from the title, free among published ids and ``taken``)."""
    state = st.session_state
    _options, lookup = ui._territory_options(data.geo)
    row = dict(state.get(_k(prefix, "_row")) or {})
    title = str(_value(prefix, "title") or "").strip()
    iid = initiative_id or moderation.new_id(
        title, {*data.catalogue.initiatives["id"], *(taken or ())})
    row.update({"id": iid, "title": title or None,
                "maturity": _value(prefix, "maturity") or None,
                "scale": _value(prefix, "scale") or None})
    for col in ("start_date", "end_date"):
        row[col] = _value(prefix, col)
    for col, _label, _voc in MULTI:
        row[col] = list(_value(prefix, col) or [])
    for col, _label in [*TEXT_AREAS, *SHORT_TEXTS, ("contact_email", "")]:
        row[col] = str(_value(prefix, col) or "").strip() or None
    for col in ("created_at", "updated_at", "version"):
        row[col] = None
    territories = [lookup[x] for x in _value(prefix, "territories") or [] if x in lookup]
    tables: dict[str, pd.DataFrame] = {
        "initiatives": pd.DataFrame([row], columns=model.INITIATIVE_COLUMNS).astype(object),
        "territories": pd.DataFrame([{"initiative_id": iid, "level": lvl, "code": code}
                                     for lvl, code in territories],
                                    columns=model.TERRITORY_COLUMNS),
    }
    for table in EDITOR_COLUMNS:
        df = _edited(prefix, table).astype(object).where(lambda d: d.notna(), None)
        df["initiative_id"] = iid
        tables[table] = df.reindex(columns=model.TABLE_COLUMNS[table])
    return model.Catalogue(**tables)


# ------------------------------------------------------------------------------ saving


def submit(prefix: str, action: Callable[[], moderation.Submission]) -> None:
    """Run a save; on refusal keep the typed values and remember the problems (shown next
    to the fields) or the conflict; on success clear the form and leave a message."""
    state = st.session_state
    try:
        result = action()
    except ValidationError as exc:
        state[_k(prefix, "_problems")] = moderation.problems_by_field(exc.problems)
        state[_k(prefix, "_conflict")] = None
        state["fx_flash"] = ("error", str(exc).split(" :\n")[0] + ".")
    except ConflictError as exc:
        state[_k(prefix, "_problems")] = {}
        state[_k(prefix, "_conflict")] = str(exc)
    except TerritoiresError as exc:
        state["fx_flash"] = ("error", str(exc))
    else:
        clear_form(prefix)
        state["fx_flash"] = ("success", result.describe())
        state["fx_last"] = result.initiative_id if result.published else None
    st.rerun()


def act(run: Callable[[], Any], success: str | Callable[[Any], str] | None = None, *,
        clear: Sequence[str] = ()) -> None:
    """Run a write, leave its French outcome for :func:`flash` on the next run (the refusal,
    or ``success``: a text, a function of the result, or by default the result itself), drop
    the widget state ``clear`` on success, and rerun."""
    try:
        result = run()
    except TerritoiresError as exc:
        st.session_state["fx_flash"] = ("error", str(exc))
    else:
        message = (result if success is None else
                   success(result) if callable(success) else success)
        st.session_state["fx_flash"] = ("success", str(message))
        for key in clear:
            st.session_state.pop(key, None)
    st.rerun()


def flash() -> None:
    """Show (once, at the top of the page) the message left by the last save; see
    :func:`outcome` for the same message beside the save button."""
    message = st.session_state.pop("fx_flash", None)
    st.session_state["_fx_flash_now"] = message
    _show_flash(message)


def _show_flash(message: tuple[str, str] | None) -> None:
    kind, text = message or (None, None)
    if kind == "success":
        st.success(views.md_text(text), icon=":material/check_circle:")
    elif kind == "error":
        st.error(views.md_text(text), icon=":material/error:")


def outcome(prefix: str) -> None:
    """Under the save button (where the user's eyes are after a click): the last save's
    message again, or a pointer to the conflict panel and to the fields to correct."""
    _show_flash(st.session_state.pop("_fx_flash_now", None))
    if st.session_state.get(_k(prefix, "_conflict")):
        st.error("Enregistrement refusé (conflit de modification) : rien n'a été écrit et vos "
                 "saisies sont gardées. Les différences avec la version publiée et les deux "
                 "façons de continuer sont en haut de la page.", icon=":material/sync_problem:")
    problems = _problems(prefix)
    if problems:
        fields = sorted({_field_label(key) for key in problems})
        st.error(views.md_text("Champs à corriger (messages sous chaque champ) : "
                               + ", ".join(fields) + "."), icon=":material/error:")


def _field_label(key: str) -> str:
    table, _, column = key.partition(".")
    if table == "initiatives":
        return moderation.FIELD_LABELS.get(column, column or "fiche")
    part = moderation.TABLE_TITLES.get(table, table)
    label = dict(EDITOR_COLUMNS.get(table, [])).get(column, column)
    return f"{part} ({label})" if label else part


def conflict_panel(prefix: str, store: Store, data: ui.AppData, initiative_id: str,
                   include_private: bool) -> None:
    """After a refused save (no lost update): the message, what differs between the typed
    fiche and the version now published, and the two ways out."""
    message = st.session_state.get(_k(prefix, "_conflict"))
    if not message:
        return
    st.error(views.md_text(message), icon=":material/sync_problem:")
    current, version = moderation.published(store, initiative_id)
    if current is None:
        return
    mine = catalogue_payload(moderation.prepare(form_catalogue(prefix, data, initiative_id)))
    st.markdown(f"**Différences entre la version {version} publiée et vos saisies**")
    show_diff(moderation.diff(current, mine, include_private=include_private,
                              territory_label=data.index.label))
    keep, reload = st.columns(2)
    if keep.button(f"Garder mes saisies et repartir de la version {version}",
                   key=_k(prefix, "rebase"), icon=":material/merge:",
                   help="Vos saisies remplaceront la version publiée : relisez les "
                        "différences ci-dessus avant d'enregistrer."):
        st.session_state[_k(prefix, "_base")] = version
        st.session_state[_k(prefix, "_conflict")] = None
        st.rerun()
    if reload.button(f"Abandonner mes saisies et charger la version {version}",
                     key=_k(prefix, "reload"), icon=":material/refresh:"):
        payload = moderation.public_payload(current, include_private)
        load_form(prefix, payload, version, data.index)
        st.rerun()


# ------------------------------------------------------------------------------ views


def show_diff(table: pd.DataFrame) -> None:
    """A field-by-field diff as a plain-text table."""
    if table.empty:
        st.caption("Aucune différence.")
        return
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "Avant": st.column_config.TextColumn("Avant", width="large"),
        "Après": st.column_config.TextColumn("Après", width="large"),
    })


def proposal_label(p: moderation.Proposal) -> str:
    """Plain-text label of a proposal for a select box."""
    return (f"n° {p.id} — {moderation.KIND_LABELS.get(p.kind, p.kind)} — {p.title[:80]} "
            f"({p.author_name or p.author}, {views.fmt_date(p.created_at)})")


def proposal_view(store: Store, p: moderation.Proposal, index: Any = None) -> None:
    """A proposal against the published fiche: comment, base version, diff."""
    current, version = moderation.published(store, p.initiative_id)
    st.text(f"Fiche : {p.title}\nIdentifiant : {p.initiative_id}\n"
            f"Auteur : {p.author_name + ' — ' if p.author_name else ''}{p.author}\n"
            f"Partie de la version : {p.base_version or 'aucune (nouvelle fiche)'} ; "
            f"version publiée : {version or 'aucune'}")
    if p.comment:
        st.text(f"Commentaire de l'auteur : {p.comment}")
    if p.base_version is not None and version != p.base_version:
        st.warning(f"La fiche a changé depuis cette proposition (partie de la version "
                   f"{p.base_version}, version {version} publiée) : la publier est refusé ; "
                   "rejetez-la en expliquant pourquoi.", icon=":material/sync_problem:")
    show_diff(moderation.diff(current, p.payload, include_private=True,
                              territory_label=index.label if index is not None else None))


def fiche_tools(data: ui.AppData, initiative_id: str) -> None:
    """Under the Fiche title: "Modifier cette fiche" and, for moderators, the private
    contact e-mail."""
    user = ui.current_user()
    if user.at_least("contributeur"):
        st.page_link("pages/modifier.py", label="Modifier cette fiche",
                     icon=":material/edit:", query_params={"id": initiative_id})
    if user.at_least("moderateur"):
        ini = data.catalogue.initiatives
        emails = ini.loc[ini["id"] == initiative_id, "contact_email"].dropna()
        if len(emails) and str(emails.iloc[0]).strip():
            st.text(f"E-mail de contact (privé, visible des modérateurs) : {emails.iloc[0]}")


def fiche_history(data: ui.AppData, initiative_id: str) -> None:
    """The Fiche's "Historique" section: maturity path, versions, diff between two versions
    and, for moderators, "restaurer cette version"."""
    user, store, index = ui.current_user(), ui.contribution_store(), data.index
    flash()
    history = moderation.versions(store, initiative_id)
    st.header("Parcours de maturité")
    path = moderation.maturity_path(history)
    if path.empty:
        st.caption("Aucune version enregistrée.")
        return
    start = (history[-1].payload.get("initiatives") or [{}])[0].get("start_date")
    begun = f"Début de l'initiative : {views.fmt_date(start)}. " if start else ""
    st.text(begun + "Étapes publiées : " + " → ".join(
        f"{r['Étape']} ({views.fmt_date(r['Depuis le'])})" for _, r in path.iterrows()))
    st.header("Historique")
    box = ui.lazy_expander("Versions publiées et leur comparaison", HISTORY_KEY,
                           icon=":material/history:")
    if box is None:  # drawn once opened (the Fiche's first view is lighter)
        return
    with box:
        _history_tabs(history, user, store, index, initiative_id)


#: Key of the Fiche's history expander (its tables are drawn only when open)
HISTORY_KEY = "hist_open"
#: Prefix of the session key (followed by the initiative id) keeping the latest version the
#: history showed: the base version of a restore clicked in the next run
SHOWN_VERSION_KEY = "hist_shown_"


def shown_version(initiative_id: str, latest: int) -> int | None:
    """The latest version the previous run's history showed for ``initiative_id`` (None if
    it was not drawn), and remember ``latest``, the one this run shows.

    A restore clicked in this run starts from what the moderator was looking at: the
    history read again in the click's run may already hold a version published meanwhile,
    which :func:`moderation.restore` must refuse rather than silently replace."""
    key = SHOWN_VERSION_KEY + initiative_id
    seen = st.session_state.get(key)
    st.session_state[key] = latest
    return seen


def _history_tabs(history: list[moderation.Version], user: auth.User, store: Store,
                  index: TerritoryIndex | None, initiative_id: str) -> None:
    """The versions as a table, the comparison of two of them, the restoring of one."""
    versions_tab, compare_tab = st.tabs(["Versions", "Comparer deux versions"])
    with versions_tab:
        st.dataframe(moderation.history_table(history, show_identities=user.at_least(
            "moderateur")), hide_index=True, width="stretch",
                     column_config={"Publiée le": st.column_config.DatetimeColumn(
                         "Publiée le", format="DD/MM/YYYY HH:mm")})
    numbers = [v.version for v in history]
    seen = shown_version(initiative_id, numbers[-1])
    private = user.at_least("moderateur")
    with compare_tab:
        if len(numbers) < 2:
            st.caption("Une seule version publiée pour l'instant.")
        else:
            a, b = st.columns(2)
            old = a.selectbox("Version de départ", numbers, index=len(numbers) - 2,
                              key="hist_a")
            new = b.selectbox("Version d'arrivée", numbers, index=len(numbers) - 1,
                              key="hist_b")
            by = {v.version: v.payload for v in history}
            show_diff(moderation.diff(by[old], by[new], include_private=private,
                                      territory_label=index.label if index is not None
                                      else None))
        if private and len(numbers) > 1:
            chosen = st.selectbox("Version à restaurer", numbers[:-1], index=None,
                                  key="hist_restore", placeholder="Choisissez une version")
            if chosen is not None and st.button("Restaurer cette version",
                                                key="hist_restore_btn",
                                                icon=":material/history:"):
                try:
                    new_version = moderation.restore(
                        store, user, initiative_id, chosen,
                        base_version=numbers[-1] if seen is None else seen)
                except TerritoiresError as exc:
                    st.error(views.md_text(str(exc)))
                else:
                    st.session_state["fx_flash"] = (
                        "success", f"Version {chosen} restaurée (nouvelle version "
                                   f"{new_version}).")
                    st.rerun()


def role_label(role: str) -> str:
    """French label of a role."""
    return auth.ROLE_LABELS.get(role, role)


def problems_text(problems: list[Problem]) -> str:
    """Problems as plain text lines."""
    return "\n".join(f"- {p}" for p in problems)


__all__ = ["catalogue_payload", "payload_catalogue"]
