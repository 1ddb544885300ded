"""Accessibility (RGAA) in a real browser: page language, one title per page, no axe-core
violation on any page (the map's frame included), the map usable with the keyboard."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from browser_support import (
    MAP_IFRAME,
    axe_script,
    browser_available,
    browser_context,
    map_frame,
    serve,
    settle,
)
from territoires.pipeline.layers import Layers

pytestmark = pytest.mark.browser

if not browser_available():
    pytest.skip("chromium absent (/usr/bin/chromium)", allow_module_level=True)

#: (URL path, expected <title>, has a map)
PAGES: list[tuple[str, str, bool]] = [
    ("/", "Accueil — Territoires", False),
    # chosen filters: their tags are drawn in the theme's primary colour
    ("/carte?t=commune:33119&themes=culture", "Carte — Territoires", True),
    ("/catalogue", "Catalogue — Territoires", False),
    ("/fiche?id=cenon-culture", "Fiche — Territoires", True),
    ("/comparer?cmp=commune:33119,commune:64445", "Comparer — Territoires", False),
    ("/couverture", "Couverture — Territoires", True),
    ("/exporter", "Exporter — Territoires", False),
    ("/a-propos", "À propos — Territoires", False),
]

#: axe-core rules of WCAG 2.0 and 2.1, levels A and AA: what RGAA 4.1 follows, plus
#: heading-order (an axe "best practice", but RGAA 9.1.1 asks for a relevant hierarchy of
#: headings: no h1 followed by an h4).
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
EXTRA_RULES = ["heading-order"]

_AXE_RUN = """async () => {
    const r = await axe.run(document, {iframes: false, resultTypes: ['violations'],
        runOnly: {type: 'tag', values: WCAG_TAGS}});
    const extra = await axe.run(document, {iframes: false, resultTypes: ['violations'],
        runOnly: {type: 'rule', values: EXTRA_RULES}});
    return r.violations.concat(extra.violations).map(v => ({id: v.id, impact: v.impact,
        help: v.help,
        nodes: v.nodes.slice(0, 5).map(n => [n.target.join(' '), n.failureSummary])}));
}""".replace("WCAG_TAGS", json.dumps(WCAG_TAGS)).replace("EXTRA_RULES", json.dumps(EXTRA_RULES))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_layers: Layers) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("a11y"), tiny_layers) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with browser_context() as context:
        yield context


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_script().read_text(encoding="utf-8")


def _open(browser, url: str, has_map: bool):
    page = browser.new_page()
    page.goto(url)
    settle(page)
    if has_map:
        map_frame(page)
    return page


@pytest.mark.parametrize(("path", "title", "has_map"), PAGES)
def test_language_title_and_axe(server: str, browser, axe: str, path: str, title: str,
                                has_map: bool) -> None:
    page = _open(browser, server + path, has_map)
    try:
        page.wait_for_function("() => document.documentElement.lang === 'fr'",
                               timeout=30_000)
        page.wait_for_function("(t) => document.title === t", arg=title, timeout=30_000)
        # the script setting the language takes no room in the sidebar
        holder = page.locator(".stElementContainer:has(#territoires-lang)")
        assert holder.count() == 1 and holder.evaluate("e => e.offsetHeight") == 0
        page.add_script_tag(content=axe)
        violations = page.evaluate(_AXE_RUN)
        if violations:
            # a loaded machine may catch the page mid-layout (a table still sizing its
            # columns shows a scrollbar for a moment): what stays is a violation
            page.wait_for_timeout(2000)
            settle(page)
            violations = page.evaluate(_AXE_RUN)
        assert violations == [], violations
        if has_map:
            frame = page.locator(MAP_IFRAME).first.content_frame
            frame.locator("body").evaluate(f"() => {{ {axe}\n }}")
            frame_violations = frame.locator("body").evaluate(
                _AXE_RUN.replace("async () =>", "async (_el) =>"))
            assert frame_violations == [], frame_violations
    finally:
        page.close()


def _focus_map_by_keyboard(page, max_tabs: int = 80) -> None:
    """Press Tab until the keyboard focus is on the map (inside its iframe)."""
    frame = page.locator(MAP_IFRAME).first.content_frame
    for _ in range(max_tabs):
        page.keyboard.press("Tab")
        if frame.locator("body").evaluate(
                "() => document.activeElement && document.activeElement.classList"
                ".contains('leaflet-container')"):
            return
    raise AssertionError("la carte n'est pas atteignable au clavier")


def test_map_keyboard_zoom_and_layers(server: str, browser) -> None:
    """Tab reaches the map; "+" zooms in, "-" zooms out; Tab then reaches the zoom buttons
    and the layer control, whose check boxes switch a layer with the space bar."""
    page = _open(browser, f"{server}/carte", has_map=True)
    try:
        frame_el = page.locator(MAP_IFRAME).first
        frame = frame_el.content_frame
        body = frame.locator("body")
        live = frame_el.element_handle().content_frame()  # a Frame, which can wait
        zoom = body.evaluate("() => window.map.getZoom()")
        _focus_map_by_keyboard(page)
        page.keyboard.press("+")  # Leaflet's keyboard handler on the focused map
        live.wait_for_function("(z) => window.map.getZoom() > z", arg=zoom, timeout=10_000)
        live.wait_for_function("() => !window.map._animatingZoom", timeout=10_000)
        page.wait_for_timeout(300)  # Leaflet ignores a key pressed during its zoom animation
        zoomed = body.evaluate("() => window.map.getZoom()")
        page.keyboard.press("-")
        live.wait_for_function("(z) => window.map.getZoom() < z", arg=zoomed,
                               timeout=10_000)
        # the zoom buttons and the layer check boxes are next in the tab order
        reached: list[str] = []
        toggled = False
        for _ in range(40):
            page.keyboard.press("Tab")
            info = body.evaluate(
                """() => { const a = document.activeElement;
                if (!a || a === document.body) return null;
                const label = a.closest('label');
                return {cls: a.className || '', type: a.type || '',
                        title: a.title || a.getAttribute('aria-label') || '',
                        label: label ? label.innerText.trim() : ''}; }""")
            if info is None:
                break
            reached.append(info["title"] or info["label"])
            if info["type"] == "checkbox" and info["label"] == "QPV" and not toggled:
                before = body.evaluate(
                    "() => document.activeElement.checked")
                page.keyboard.press("Space")
                frame.locator("body").evaluate("() => new Promise(r => setTimeout(r, 200))")
                after = body.evaluate("() => document.activeElement.checked")
                assert after != before
                toggled = True
        assert "Zoom in" in reached or "Zoom avant" in reached, reached
        assert toggled, reached
    finally:
        page.close()


@pytest.mark.parametrize(("path", "where", "label", "drawn", "shown"), [
    ("/carte", "stSidebar", "Plus de filtres", "stSlider",
     ("Maturité", "Type de financeur", "Années", "Montant max.")),
    ("/carte", "stMain", "Tableau des valeurs de la carte", "stDataFrame", ()),
    ("/fiche?id=cenon-culture", "stMain", "Signaler une erreur sur cette fiche",
     "stTextArea", ("Ce qui est inexact ou manque",)),
    ("/fiche?id=cenon-culture", "stMain", "Graphique des financements",
     "stVegaLiteChart", ()),
    ("/fiche?id=cenon-culture", "stMain", "Versions publiées et leur comparaison",
     "stDataFrame", ("Versions", "Comparer deux versions")),
])
def test_lazy_expanders_open_with_the_keyboard(server: str, browser, axe: str, path: str,
                                               where: str, label: str, drawn: str,
                                               shown: tuple[str, ...]) -> None:
    """« Plus de filtres », Carte's table of values, the Fiche's error report and versions
    (closed at first, their content not drawn) open with the keyboard; their content is
    then drawn, with no axe-core violation."""
    page = _open(browser, server + path, True)
    try:
        part = page.get_by_test_id(where)
        assert part.get_by_test_id(drawn).count() == 0
        summary = part.locator("summary", has_text=label)
        summary.focus()
        page.keyboard.press("Enter")
        part.get_by_test_id(drawn).first.wait_for(timeout=30_000)
        settle(page)
        for text in shown:
            assert part.get_by_text(text, exact=True).count() == 1, text
        page.add_script_tag(content=axe)
        assert page.evaluate(_AXE_RUN) == []
    finally:
        page.close()


def test_couverture_tabs_with_the_keyboard_and_in_the_url(server: str, browser,
                                                          axe: str) -> None:
    """Couverture's parts are tabs drawn only when chosen: chosen with the keyboard, the
    part is drawn and the address names it (a shared link opens it), no axe-core
    violation."""
    page = _open(browser, server + "/couverture", True)
    try:
        main = page.get_by_test_id("stMain")
        assert main.get_by_text("Chevauchements : territoires").count() == 0
        page.get_by_role("tab", name="Chevauchements").focus()
        page.keyboard.press("Enter")
        main.get_by_text("Chevauchements : territoires").first.wait_for(timeout=30_000)
        page.wait_for_function("() => location.search.includes('vue=chevauchements')",
                               timeout=30_000)
        settle(page)
        page.add_script_tag(content=axe)
        assert page.evaluate(_AXE_RUN) == []
    finally:
        page.close()
