"""À propos: sources, licences and data vintages."""

from __future__ import annotations

import streamlit as st

from territoires import ui, views
from territoires.errors import TerritoiresError
from territoires.layers import read_status

ui.ensure_routed(__file__)

st.title("À propos")
st.markdown(
    "**Territoires** est un outil libre (code sous licence MIT) qui croise les contours des "
    "quartiers prioritaires et des communes avec un catalogue d'initiatives d'alliances "
    "éducatives et de leurs financements.\n\n"
    "#### Sources et licences\n"
    "- **ANCT** — quartiers prioritaires de la politique de la ville (QPV 2024), contrats de "
    "ville, cités éducatives : Licence Ouverte 2.0 (Etalab).\n"
    "- **INSEE** — code officiel géographique, populations légales : Licence Ouverte 2.0.\n"
    "- **IGN / Etalab** — contours des communes, EPCI, départements et régions (Admin Express, "
    "découpage administratif) : Licence Ouverte 2.0.\n"
    "- **OpenStreetMap** — fond de carte © contributeurs OpenStreetMap, licence ODbL.\n"
    "- **Catalogue des initiatives** — fiches rédigées à partir de documents publics ; "
    "les courriels de contact ne sont jamais affichés."
)

st.markdown("#### Millésimes des couches")
try:
    table = views.layer_status_table(read_status())
    st.dataframe(table, hide_index=True, width="stretch")
except TerritoiresError as exc:
    st.info(str(exc))
