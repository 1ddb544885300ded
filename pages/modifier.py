"""Modifier cette fiche (``?id=``): the published fiche in the form; saving a version that
changed since it was opened is refused, and what was typed is kept to re-apply."""

from __future__ import annotations

import streamlit as st

from territoires.analysis import views
from territoires.app import forms, ui
from territoires.catalogue import moderation

ui.ensure_routed(__file__)

with ui.guard():
    user = ui.current_user()
    st.title("Modifier une fiche")
    ui.require_role(user, "contributeur")
    data = ui.app_data()
    store = ui.contribution_store()
    ident = st.query_params.get("id", "")
    payload, version = moderation.published(store, ident) if ident else (None, None)
    if payload is None:
        st.warning(f"Aucune fiche publiée n'a l'identifiant « {views.md_text(ident)} » : "
                   "ouvrez la fiche à modifier depuis le catalogue, puis « Modifier cette "
                   "fiche ».")
        st.page_link("pages/catalogue.py", label="Catalogue", icon=":material/table_view:")
        st.stop()
    prefix = f"fx_edit_{ident}_"
    private = user.at_least("moderateur")
    forms.flash()
    if not forms.form_loaded(prefix):
        forms.load_form(prefix, moderation.public_payload(payload, private), version,
                        data.index)
    st.text(f"Fiche : {payload['initiatives'][0]['title']}")
    st.page_link("pages/fiche.py", label="Voir la fiche publiée",
                 icon=":material/description:", query_params={"id": ident})
    forms.conflict_panel(prefix, store, data, ident, private)
    base = forms.base_version(prefix)
    st.caption(f"Vous partez de la version {base} (version publiée : {version})."
               + (" Vous êtes modérateur : l'enregistrement publie la fiche."
                  if private else " Un modérateur relira votre modification."))
    forms.fiche_form(prefix, data, include_private=private)
    comment = st.text_area("Ce qui change, en une phrase (facultatif)",
                           key=forms.widget_key(prefix, "comment"), max_chars=2000)
    label = "Publier la modification" if private else "Envoyer la modification"
    if st.button(label, type="primary", key=f"{prefix}send", icon=":material/send:"):
        forms.submit(prefix, lambda: moderation.submit_edit(
            store, user, forms.form_catalogue(prefix, data, ident), base,
            index=data.index, comment=comment))
    forms.outcome(prefix)
