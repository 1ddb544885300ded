"""Territoires — alliances éducatives: Streamlit entry point (router).

Run with ``streamlit run app.py``. Adding a page = one line in :data:`PAGES` (or in
:data:`CONTRIBUTION_PAGES` with the role it needs).
"""

from __future__ import annotations

from territoires.app import report_forms, ui

#: (file, menu title, icon, URL path); the first page is the home page.
PAGES: list[tuple[str, str, str, str]] = [
    ("pages/accueil.py", "Accueil", ":material/home:", ""),
    ("pages/carte.py", "Carte", ":material/map:", "carte"),
    ("pages/catalogue.py", "Catalogue", ":material/table_view:", "catalogue"),
    ("pages/fiche.py", "Fiche", ":material/description:", "fiche"),
    ("pages/comparer.py", "Comparer", ":material/compare_arrows:", "comparer"),
    ("pages/couverture.py", "Couverture", ":material/layers_clear:", "couverture"),
    ("pages/exporter.py", "Exporter", ":material/download:", "exporter"),
    ("pages/a-propos.py", "À propos", ":material/info:", "a-propos"),
]
#: Contribution pages and the role that shows them in the menu ("anonyme": always shown, the
#: page explains how to sign in or to enable contribution). Every page checks the role again,
#: and so does every core write function.
CONTRIBUTION_PAGES: list[tuple[str, str, str, str, str]] = [
    ("pages/proposer.py", "Proposer une initiative", ":material/add_circle:", "proposer",
     "anonyme"),
    ("pages/modifier.py", "Modifier une fiche", ":material/edit:", "modifier", "hidden"),
    ("pages/importer.py", "Importer", ":material/upload_file:", "importer", "contributeur"),
    ("pages/mes-propositions.py", "Mes propositions", ":material/inbox:", "mes-propositions",
     "contributeur"),
    ("pages/moderation.py", "Modération", ":material/fact_check:", "moderation", "moderateur"),
    ("pages/signalements.py", "Signalements", ":material/flag:", "signalements",
     "moderateur"),
    ("pages/administration.py", "Administration", ":material/admin_panel_settings:",
     "administration", "admin"),
]

ui.setup_page()
user = ui.current_user()
menu = [p[0] for p in PAGES] + [p[0] for p in CONTRIBUTION_PAGES
                                if p[4] != "hidden" and user.at_least(p[4])]
page = ui.navigation([*PAGES, *(p[:4] for p in CONTRIBUTION_PAGES)], menu=menu)
ui.account_sidebar(user)
report_forms.open_reports_sidebar(user)
ui.run_page(page)
ui.footer()
