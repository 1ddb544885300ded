"""Shared helpers of the browser tests: a real ``streamlit run`` server over the tiny data,
and Debian's chromium driven by Playwright, offline.

The maps' scripts (Leaflet, MarkerCluster, jQuery) are served by the app itself
(``static/vendor``, fetched from npm by :func:`territoires.app.assets.fetch`): the browser needs
no routing for them. Requests leaving 127.0.0.1 (map tiles) are refused and recorded in
:data:`OUTSIDE`, so that a test can check that no script or style sheet came from a CDN.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from app_env import make_env
from territoires.app import assets
from territoires.pipeline.layers import Layers

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
#: Test-only web assets (axe-core), git-ignored.
TEST_ASSETS = REPO / ".cache" / "webassets"
#: Requests the browser tried outside 127.0.0.1: (resource type, URL).
OUTSIDE: list[tuple[str, str]] = []


def browser_available() -> bool:
    """Chromium present (CI installs it; elsewhere the browser tests skip without it)."""
    return CHROMIUM.exists() or os.environ.get("CI") == "true"


def ensure_map_assets() -> None:
    """Fetch the maps' libraries into the app's static folder (no-op when present)."""
    assets.fetch()


def axe_script() -> Path:
    """axe-core's ``axe.min.js``, fetched once from npm (pinned, integrity checked)."""
    assets.fetch([assets.AXE_CORE], static=TEST_ASSETS)
    return assets.vendor_dir(TEST_ASSETS) / assets.AXE_CORE.folder / "axe.min.js"


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(root: Path, layers: Layers) -> Iterator[str]:
    """Run ``streamlit run app.py`` on a free loopback port over the tiny test data."""
    with serve_env(root, make_env(root, layers)) as base:
        yield base


def serve_command(port: int, *extra: str) -> list[str]:
    """``territoires serve`` (data loaded before the server listens) headless on
    ``127.0.0.1:port``; run it with ``TERRITOIRES_HOME`` = the repository (its ``app.py``)."""
    return [str(Path(sys.executable).parent / "territoires"), "serve", "--",
            "--server.headless", "true", "--server.port", str(port),
            "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", *extra]


def streamlit_command(port: int, *extra: str) -> list[str]:
    """``streamlit run app.py`` headless on ``127.0.0.1:port`` (plus ``extra`` options)."""
    return [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
            "--server.headless", "true", "--server.port", str(port),
            "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", *extra]


@contextmanager
def process(cmd: list[str], env: dict[str, str], log: Path, health: str,
            seconds: float = 90, poll: float = 0.5, cwd: Path = REPO
            ) -> Iterator[subprocess.Popen]:
    """Run a server process (in ``cwd``, output in ``log``) until ``health`` answers 200,
    asked every ``poll`` seconds; stop it after (terminate, then kill). Raises with the log
    if it dies or never answers. (The benchmarks start their servers with it too.)"""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + seconds
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(log.read_text(errors="replace"))
                try:
                    if requests.get(health, timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{health} did not answer in {seconds} s:\n"
                                       + log.read_text(errors="replace"))
                time.sleep(poll)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def serve_env(root: Path, env_vars: dict[str, str], seconds: float = 90) -> Iterator[str]:
    """Run ``streamlit run app.py`` on a free loopback port with ``env_vars`` (the
    ``TERRITOIRES_*`` settings of :func:`app_env.make_env`, possibly changed)."""
    ensure_map_assets()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with process(streamlit_command(port), env_vars, root / "streamlit.log",
                 f"{base}/_stcore/health", seconds):
        yield base


@contextmanager
def browser_context() -> Iterator[object]:
    """A French user's chromium context, offline: requests outside 127.0.0.1 are refused
    (and recorded in :data:`OUTSIDE`)."""
    from playwright.sync_api import sync_playwright

    def route(r) -> None:
        url = r.request.url
        if url.startswith("http://127.0.0.1"):
            r.continue_()
            return
        OUTSIDE.append((r.request.resource_type, url))
        r.abort()

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        # a French user's browser: the tables' numbers follow the browser's locale
        context = b.new_context(viewport={"width": 1400, "height": 1000}, locale="fr-FR")
        context.route("**/*", route)
        try:
            yield context
        finally:
            context.close()
            b.close()


#: A map's iframe: the Carte's component frame or a static map's document (Fiche, Couverture)
MAP_IFRAME = "iframe[title*='carte_interactive'], iframe.territoires-carte"


def map_frame(page, timeout: float = 60_000):
    """The first map's iframe element, once its layer control is drawn."""
    frame_el = page.locator(MAP_IFRAME).first
    frame_el.wait_for(timeout=timeout)
    frame_el.content_frame.locator(".leaflet-control-layers").first.wait_for(
        state="attached", timeout=timeout)
    # the reference layers served as files (territoires.app.layer_files) fetched and drawn
    frame_el.element_handle().content_frame().wait_for_function(
        "() => !(window.__territoiresLoading > 0)", timeout=timeout)
    return frame_el


#: The groups (their index in the frame's list, bottom first) in the order the canvas
#: draws their layers: increasing when the layers are drawn in the groups' order.
DRAW_ORDER = """() => { const group = new Map();
  (window.feature_group || []).forEach((g, i) => { const walk = x => {
      if (x.eachLayer) x.eachLayer(walk); else group.set(L.stamp(x), i); }; walk(g); });
  const renderers = new Set(); window.map.eachLayer(l => l._renderer && renderers.add(l._renderer));
  const seq = [];
  for (const r of renderers) { for (let n = r._drawFirst; n; n = n.next) {
      const i = group.get(L.stamp(n.layer));
      if (i !== undefined && seq[seq.length - 1] !== i) seq.push(i); } }
  return {seq, renderers: renderers.size}; }"""


def assert_in_order(frame, groups: int = 3) -> None:
    """The map frame's canvas draws the layers of at least ``groups`` feature groups, in
    the groups' order (bottom first)."""
    order = frame.evaluate(DRAW_ORDER)
    assert order["renderers"] == 1 and len(order["seq"]) >= groups, order
    assert order["seq"] == sorted(set(order["seq"])), order


def settle(page, timeout: float = 60_000) -> None:
    """Wait until the page's script run is over (footer drawn, no running indicator)."""
    page.get_by_text("Sources : ANCT").first.wait_for(state="attached", timeout=timeout)
    idle = """() => !document.querySelector('[data-testid="stStatusWidget"]')"""
    page.wait_for_function(idle, timeout=timeout)
    page.wait_for_timeout(400)  # elements still laying out after the run
    page.wait_for_function(idle, timeout=timeout)


# --- signed-in users (tests/test_browser_auth.py, tests/test_deploy.py)


def sign_in(context, base: str, email: str, provider_port: int):
    """Sign in through the local OpenID Connect provider's real login page (its ``sub`` box
    takes the e-mail); returns the app page, signed in."""
    import re

    page = context.new_page()
    page.goto(f"{base}/proposer")
    page.get_by_role("button", name="Se connecter").first.click(timeout=60_000)
    page.wait_for_url(re.compile(rf"127\.0\.0\.1:{provider_port}/"), timeout=30_000)
    page.locator("input[name=sub]").fill(email)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(lambda url: url.startswith(base), timeout=30_000)
    page.get_by_text(f"Connecté : {email}").wait_for(timeout=60_000)
    return page


def text_input(page, label: str, value: str, area: bool = False) -> None:
    """Type ``value`` in the field labelled ``label`` and submit it (Enter, Ctrl+Enter)."""
    field = page.get_by_label(label, exact=True)
    field.fill(value)
    field.press("Control+Enter" if area else "Enter")
    page.wait_for_timeout(500)


def wait_idle(page) -> None:
    """Until Streamlit's "running" indicator is gone."""
    page.wait_for_timeout(300)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=60_000)


def expect_text(page, text, name: str) -> None:
    """Wait for ``text`` (string or pattern); on timeout, fail with the page's text and a
    screenshot in tests/artifacts/ (what the user saw instead)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_text(text).first.wait_for(timeout=90_000)
    except PlaywrightTimeout:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"auth_{name}.png"), full_page=True)
        main = page.get_by_test_id("stMain").inner_text()
        raise AssertionError(f"« {text} » not shown; the page shows:\n{main[:3000]}") from None
