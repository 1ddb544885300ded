"""Importer: a workbook or CSV set checked against the published catalogue, its validation
report, then written on confirmation (moderators publish; contributors propose)."""

from __future__ import annotations

import streamlit as st

from territoires.analysis import views
from territoires.analysis.formatting import fmt_int
from territoires.app import forms, import_forms, ui
from territoires.catalogue import export, importing, reading

ui.ensure_routed(__file__)

st.title("Importer des fiches")

with ui.guard():
    user = ui.current_user()
    ui.require_role(user, "contributeur")
    data = ui.app_data()
    forms.flash()
    direct = user.at_least("moderateur")
    st.text(
        ("Vos fiches seront publiées dès la confirmation (rôle modérateur)." if direct else
         "Chaque fiche nouvelle ou modifiée deviendra une proposition dans la file de "
         "modération ; elle sera visible une fois publiée par un modérateur.")
        + f"\nFormats : classeur .xlsx (une feuille par table) ou .zip de fichiers CSV ; au "
        f"plus {importing.MAX_UPLOAD_BYTES // (1024 * 1024)} Mo par fichier, "
        f"{fmt_int(reading.MAX_UNCOMPRESSED_BYTES // 1_000_000)} Mo une fois décompressé, "
        f"{fmt_int(reading.MAX_ROWS_PER_SHEET - 1)} lignes par feuille, "
        f"{fmt_int(reading.MAX_CELL_CHARS)} caractères par cellule.")
    st.download_button("Télécharger le modèle vide (XLSX)", export.template_bytes(),
                       file_name="territoires-modele-import.xlsx", key="imp_template",
                       mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                       icon=":material/download:", on_click="ignore")
    upload = st.file_uploader("Fichier à importer", type=["xlsx", "zip", "csv"],
                              key=f"imp_upload_{st.session_state.get('imp_upload_n', 0)}")
    if upload is None:
        st.stop()
    plan = import_forms.checked_upload(upload, data)
    if plan is None:
        st.stop()
    st.dataframe({"Feuille": list(plan.counts()), "Lignes lues": list(plan.counts().values())},
                 hide_index=True)
    if not plan.ok:
        st.error(views.md_text(plan.summary()), icon=":material/error:")
        st.header("Rapport de validation")
        st.dataframe(views.problems_table(plan.problems), hide_index=True,
                     width="stretch", column_config={"Message": st.column_config.TextColumn(
                         width="large")})
        st.stop()
    report = plan.report
    cols = st.columns(4)
    cols[0].metric("Fiches ajoutées", fmt_int(report.inserted))
    cols[1].metric("Fiches modifiées", fmt_int(report.updated))
    cols[2].metric("Fiches inchangées", fmt_int(report.unchanged))
    cols[3].metric("Lignes de financement", fmt_int(report.funding_inserted
                                                    + report.funding_replaced))
    st.success(views.md_text(plan.summary()), icon=":material/task_alt:")
    comment = st.text_input("Commentaire (facultatif, gardé dans l'historique)",
                            key="imp_comment", max_chars=2000)
    label = "Publier l'import" if direct else "Déposer les propositions"
    if st.button(label, type="primary", key="imp_confirm", icon=":material/upload:"):
        import_forms.confirm(plan, user, comment)
