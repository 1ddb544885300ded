"""À propos: sources, licences and data vintages."""

from __future__ import annotations

import streamlit as st

from territoires.analysis import views
from territoires.app import ui
from territoires.errors import TerritoiresError
from territoires.pipeline.layers import read_status

ui.ensure_routed(__file__)

st.title("À propos")
st.markdown(
    "**Territoires** est un outil libre (code sous licence MIT) qui croise les contours des "
    "quartiers prioritaires et des communes avec un catalogue d'initiatives d'alliances "
    "éducatives et de leurs financements.\n\n"
    "## Sources et licences\n"
    "- **ANCT** — quartiers prioritaires de la politique de la ville (QPV 2024), contrats de "
    "ville, cités éducatives : Licence Ouverte 2.0 (Etalab).\n"
    "- **INSEE** — code officiel géographique, populations légales, population des QPV "
    "(`pop_QPV24`) : Licence Ouverte 2.0.\n"
    "- **Population des QPV hors ligne** — à défaut du fichier de l'INSEE, chiffres SIG Ville "
    "(ANCT / INSEE) **republiés par un tiers** (dépôt GitHub RemiG1984/MaFrance), non "
    "officiels et à vérifier auprès de l'INSEE ; la source de chaque chiffre est gardée par "
    "QPV, et une population inconnue est affichée « inconnue », jamais 0.\n"
    "- **IGN / Etalab** — contours des communes, EPCI, départements et régions (Admin Express, "
    "découpage administratif) : Licence Ouverte 2.0.\n"
    "- **OpenStreetMap** — fond de carte © contributeurs OpenStreetMap, licence ODbL.\n"
    "- **Catalogue des initiatives** — fiches rédigées à partir de documents publics ; "
    "les courriels de contact ne sont jamais affichés."
)

st.markdown("## Millésimes des couches\n"
            "Par couche : source, millésime, nombre d'entités, combien ont un contour et une "
            "population connue, et ce que la construction a dû compléter (contours dissous à "
            "partir des communes, contours partiels).")
try:
    table = views.layer_status_table(read_status())
    st.dataframe(table, hide_index=True, width="stretch")
except TerritoiresError as exc:
    st.info(views.md_text(str(exc)))
