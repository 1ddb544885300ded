"""Administration: roles of the signed-in people and the audit log (admins)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from territoires.app import forms, ui
from territoires.catalogue import auth, moderation

ui.ensure_routed(__file__)

st.title("Administration")

with ui.guard():
    user = ui.current_user()
    ui.require_role(user, "admin")
    store = ui.contribution_store()
    forms.flash()
    st.header("Rôles")
    users = auth.list_users(store, user)
    st.dataframe(pd.DataFrame({
        "E-mail ou identifiant": [u["key"] for u in users],
        "Rôle": [forms.role_label(str(u["role"])) for u in users],
        "Donné par": [u["granted_by"] for u in users],
        "Le": [u["granted_at"] for u in users],
    }), hide_index=True, width="stretch",
        column_config={"Le": st.column_config.DatetimeColumn(format="DD/MM/YYYY HH:mm")})
    st.caption("Toute personne connectée sans rôle enregistré peut proposer des fiches "
               "(contributeur), sauf si TERRITOIRES_OPEN_CONTRIBUTION=0.")
    left, right = st.columns(2)
    with left:
        email = st.text_input("E-mail de la personne", key="adm_email", max_chars=320)
        role = st.selectbox("Rôle", auth.GRANTABLE, format_func=forms.role_label,
                            key="adm_role")
        grant = st.button("Donner ce rôle", key="adm_grant", icon=":material/person_add:")
    with right:
        keys = [str(u["key"]) for u in users]
        target = st.selectbox("Retirer le rôle de", keys, index=None, key="adm_target",
                              placeholder="Choisissez une personne")
        revoke = st.button("Retirer le rôle", key="adm_revoke", icon=":material/person_remove:",
                           disabled=target is None)
    if grant:
        forms.act(lambda: auth.grant(store, user, email, role))
    if revoke:
        forms.act(lambda: auth.revoke(store, user, str(target)))
    st.header("Journal")
    st.dataframe(moderation.audit_log(store, user), hide_index=True, width="stretch",
                 column_config={"Date": st.column_config.DatetimeColumn(
                     format="DD/MM/YYYY HH:mm:ss")})
