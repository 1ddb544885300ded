"""Streamlit glue of the error reports: the "Signaler une erreur" box of every fiche and the
moderators' open-report count in the sidebar (a UI-support module; the logic and the role
checks live in :mod:`territoires.catalogue.reports`)."""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from territoires.analysis import views
from territoires.app import ui
from territoires.catalogue import reports
from territoires.catalogue.auth import User
from territoires.errors import TerritoiresError


def _session_id() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "sans-session"


#: Key of the Fiche's « Signaler une erreur » expander (its form is drawn only when open)
REPORT_KEY = "rp_open"


def error_report_box(initiative_id: str) -> None:
    """The "Signaler une erreur" form, open to everyone (e-mail optional, never shown)."""
    done = st.session_state.pop("rp_flash", None)
    if done is not None:
        st.session_state[REPORT_KEY] = True  # the outcome of the sending is shown in it
    box = ui.lazy_expander("Signaler une erreur sur cette fiche", REPORT_KEY,
                           icon=":material/flag:")
    if box is None:  # the form is drawn once opened (the Fiche's first view is lighter)
        return
    with box:
        if done is not None:
            kind, text = done
            (st.success if kind == "success" else st.error)(views.md_text(text))
        with st.form("rp_form", clear_on_submit=True, enter_to_submit=False):
            message = st.text_area(
                "Ce qui est inexact ou manque", max_chars=reports.MAX_MESSAGE,
                help="Un modérateur du catalogue lira votre message et corrigera la fiche.")
            email = st.text_input(
                "Votre e-mail (facultatif, pour vous répondre ; jamais affiché ni exporté)",
                max_chars=320)
            sent = st.form_submit_button("Envoyer le signalement", icon=":material/send:")
        if sent:
            try:
                number = reports.submit(ui.contribution_store(), initiative_id, message,
                                        email=email, session_id=_session_id())
            except TerritoiresError as exc:
                st.session_state["rp_flash"] = ("error", str(exc))
            else:
                st.session_state["rp_flash"] = (
                    "success", f"Merci : signalement n° {number} transmis aux modérateurs.")
            st.rerun()


def open_reports_sidebar(user: User) -> None:
    """For moderators: the number of open reports, linking to their page (not while
    :func:`ui.controls_deferred`)."""
    if not user.at_least("moderateur") or ui.controls_deferred():
        return
    n = reports.open_count(ui.contribution_store(), user)
    with st.sidebar:
        st.page_link("pages/signalements.py", icon=":material/flag:",
                     label=f"Signalements ouverts : {n}")
