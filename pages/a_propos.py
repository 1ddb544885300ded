"""À propos: sources, licences and data vintages."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from territoires import ui
from territoires.errors import TerritoiresError
from territoires.formatting import fmt_int
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
    status = read_status().get("layers", {})
    rows = [
        {
            "Couche": name,
            "Source": info.get("source", ""),
            "Millésime": info.get("vintage", ""),
            "Entités": fmt_int(info.get("count")),
            "Avec contour": fmt_int(info.get("with_polygon")),
        }
        for name, info in status.items()
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
except TerritoiresError as exc:
    st.info(str(exc))
