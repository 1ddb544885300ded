"""Proposer une initiative: every field of a fiche; a contributor's fiche waits for a
moderator, a moderator's is published at once."""

from __future__ import annotations

import streamlit as st

from territoires.app import forms, ui
from territoires.catalogue import moderation

ui.ensure_routed(__file__)

st.title("Proposer une initiative")
PREFIX = "fx_new_"

with ui.guard():
    user = ui.current_user()
    ui.require_role(user, "contributeur")
    data = ui.app_data()
    store = ui.contribution_store()
    forms.flash()
    last = st.session_state.get("fx_last")
    if last:
        st.page_link("pages/fiche.py", label="Voir la fiche publiée",
                     icon=":material/description:", query_params={"id": last})
    if not forms.form_loaded(PREFIX):
        forms.load_form(PREFIX, None, None, data.index)
    if user.at_least("moderateur"):
        st.caption("Vous êtes modérateur : la fiche sera publiée dès l'enregistrement.")
    else:
        st.caption("Votre fiche sera relue par un modérateur avant d'apparaître dans le "
                   "catalogue ; suivez-la sur la page « Mes propositions ».")
    forms.fiche_form(PREFIX, data, include_private=True)
    comment = st.text_area("Commentaire pour les modérateurs (facultatif)",
                           key=forms.widget_key(PREFIX, "comment"), max_chars=2000)
    label = "Publier la fiche" if user.at_least("moderateur") else "Envoyer aux modérateurs"
    if st.button(label, type="primary", key=f"{PREFIX}send", icon=":material/send:"):
        st.session_state.pop("fx_last", None)
        forms.submit(PREFIX, lambda: moderation.submit_new(
            store, user, forms.form_catalogue(PREFIX, data, None, moderation.pending_ids(store)),
            index=data.index,
            comment=comment))
    forms.outcome(PREFIX)
