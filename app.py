"""Territoires — alliances éducatives: Streamlit entry point (router).

Run with ``streamlit run app.py``. Adding a page = one line in :data:`PAGES`.
"""

from __future__ import annotations

from territoires import ui

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

ui.setup_page()
page = ui.navigation(PAGES)
ui.run_page(page)
ui.footer()
