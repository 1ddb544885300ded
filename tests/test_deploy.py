"""Shared deployment, for real: Debian's nginx (the configuration shipped in ``deploy/``) in
front of two ``territoires serve`` processes on one PostgreSQL database, driven by chromium.

Checks that websockets go through the proxy, that sessions are sticky (each browser stays on
one process, and both processes serve someone), and that a catalogue change written by one
process is seen by the other within a few seconds (the catalogue revision in the database
invalidates each process's cached catalogue)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from app_env import make_env, tiny_catalogue
from browser_support import (
    ensure_map_assets,
    expect_text,
    map_frame,
    process,
    serve_command,
    sign_in,
    text_input,
    wait_idle,
)
from catalogue_factory import initiative, make_catalogue
from territoires.catalogue import auth
from territoires.catalogue.storage import Store
from territoires.pipeline.layers import Layers

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[1]
SITE_CONF = REPO / "deploy" / "nginx-territoires.conf"
CHROMIUM = Path("/usr/bin/chromium")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PG_URL = os.environ.get("TERRITOIRES_TEST_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
APP_PORTS = (8651, 8652)
PROXY_PORT = 8655
PROVIDER_PORT = 8656
MODERATOR = "mod@ex.org"

if os.environ.get("CI") != "true" and not (CHROMIUM.exists() and Path(NGINX).exists()):
    pytest.skip("chromium or nginx absent", allow_module_level=True)


def render_site_conf(proxy_port: int, app_ports: tuple[int, ...]) -> str:
    """The shipped site configuration with the test's ports (same directives otherwise)."""
    text = SITE_CONF.read_text(encoding="utf-8")
    servers = "".join(f"    server 127.0.0.1:{p};\n" for p in app_ports)
    text, n = re.subn(r"(?m)^    server 127\.0\.0\.1:\d+;\n(?:    server 127\.0\.0\.1:\d+;\n)*",
                      servers, text)
    assert n == 1, "the upstream block of deploy/nginx-territoires.conf changed shape"
    text, n = re.subn(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{proxy_port};", text)
    assert n == 1
    return text


def test_site_conf_renders_for_other_ports() -> None:
    text = render_site_conf(9000, (9001, 9002, 9003))
    assert "listen 127.0.0.1:9000;" in text
    assert text.count("server 127.0.0.1:900") == 3
    assert "server 127.0.0.1:8501;" not in text and "listen 127.0.0.1:8080;" not in text


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh schema on the test PostgreSQL; yields a URL whose search_path points to it."""
    engine = sa.create_engine(PG_URL)
    try:
        with engine.begin() as conn:
            schema = f"d_{uuid.uuid4().hex[:12]}"
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL injoignable ({PG_URL})")
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    try:
        yield url
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def _nginx_main_conf(prefix: Path, site: Path) -> str:
    return f"""
user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    log_format lb '$upstream_addr $cookie_territoires_lb "$request"';
    access_log {prefix}/access.log lb;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site};
}}
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, tiny_layers: Layers
               ) -> Iterator[tuple[str, str, Path]]:
    """(proxy base URL, database URL, nginx access log)."""
    root = tmp_path_factory.mktemp("deploy")
    with ExitStack() as stack:
        url = stack.enter_context(pg_database())
        ensure_map_assets()
        env = make_env(root, tiny_layers)
        env["TERRITOIRES_DATABASE_URL"] = url
        store = Store(url)
        store.create_or_upgrade()
        store.upsert(tiny_catalogue())
        auth.grant(store, auth.CLI_USER, MODERATOR, "moderateur")
        store.dispose()
        # sign-in: the same secrets for every process, the proxy's address as redirect URI
        secrets = root / "secrets.toml"
        secrets.write_text(
            "[auth]\n"
            f'redirect_uri = "http://127.0.0.1:{PROXY_PORT}/oauth2callback"\n'
            'cookie_secret = "deploy-test-cookie-secret-0123456789"\n'
            'client_id = "territoires-test"\nclient_secret = "test-only"\n'
            f'server_metadata_url = "http://127.0.0.1:{PROVIDER_PORT}/.well-known/'
            'openid-configuration"\n', encoding="utf-8")
        stack.enter_context(process(
            [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port",
             str(PROVIDER_PORT)], {}, root / "provider.log",
            f"http://127.0.0.1:{PROVIDER_PORT}/.well-known/openid-configuration", 60))
        # the documented command of each process: territoires serve (warmed before it listens)
        env["TERRITOIRES_HOME"] = str(REPO)
        for port in APP_PORTS:
            stack.enter_context(process(
                serve_command(port, "--secrets.files", str(secrets)), env,
                root / f"streamlit-{port}.log", f"http://127.0.0.1:{port}/_stcore/health",
                180))
        site = root / "site.conf"
        site.write_text(render_site_conf(PROXY_PORT, APP_PORTS), encoding="utf-8")
        main = root / "nginx.conf"
        main.write_text(_nginx_main_conf(root, site), encoding="utf-8")
        subprocess.run([NGINX, "-t", "-c", str(main), "-p", str(root)], check=True,
                       capture_output=True)
        stack.enter_context(process(
            [NGINX, "-c", str(main), "-p", str(root), "-g", "daemon off;"],
            env, root / "nginx.out", f"http://127.0.0.1:{PROXY_PORT}/_stcore/health"))
        yield f"http://127.0.0.1:{PROXY_PORT}", url, root / "access.log"


def _initiatives_metric(page) -> str:
    label = page.get_by_test_id("stMetricLabel").get_by_text("Initiatives", exact=True)
    metric = page.get_by_test_id("stMetric").filter(has=label).first
    metric.wait_for(timeout=60_000)
    return metric.get_by_test_id("stMetricValue").inner_text().strip()


def _upstreams_of(log: Path, cookie: str) -> set[str]:
    """Upstreams that served the requests carrying this sticky cookie."""
    out = set()
    for line in log.read_text().splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] == cookie and parts[0] != "-":
            out.add(parts[0])
    return out


def _lb_cookie(context) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == "territoires_lb")


def _until(page, shown, upstream: str, seconds: float = 20) -> None:
    """Reload ``page`` until ``shown(page)``: the change must reach this process in a few
    seconds."""
    deadline = time.monotonic() + seconds
    while True:
        page.reload()
        page.get_by_test_id("stMain").wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        if shown(page):
            return
        assert time.monotonic() < deadline, f"{upstream} still shows the old catalogue"


def test_two_processes_behind_nginx(deployment: tuple[str, str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    base, url, log = deployment
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        # new browsers (new cookies) until both processes serve one of them
        sessions: dict[str, tuple[object, object]] = {}
        for _ in range(16):
            context = browser.new_context(locale="fr-FR")
            context.route(re.compile(r"^(?!http://127\.0\.0\.1).*"), lambda r: r.abort())
            page = context.new_page()
            page.goto(f"{base}/")
            assert _initiatives_metric(page) == "3"
            served = _upstreams_of(log, _lb_cookie(context))
            # sticky: the page, its scripts and its websocket all went to one process
            assert len(served) == 1, served
            upstream = served.pop()
            if upstream in sessions:
                context.close()
                continue
            sessions[upstream] = (context, page)
            if len(sessions) == len(APP_PORTS):
                break
        assert len(sessions) == len(APP_PORTS), f"one process served everyone: {sessions}"

        # every process draws the maps: the first was rendered before its server started
        # (territoires serve), when Streamlit did not register the map component (404)
        for _, page in sessions.values():
            for path in ("/carte", "/fiche?id=pau-sport"):
                page.goto(f"{base}{path}")
                map_frame(page)
            page.goto(f"{base}/")

        # a catalogue change written by another process (an import on the command line)
        store = Store(url)
        store.upsert(make_catalogue([
            initiative("partagee", [("commune", "33119")], themes=["culture"],
                       title="Initiative vue partout", maturity="emergence"),
        ], []))
        store.dispose()
        for upstream, (_, page) in sessions.items():
            _until(page, lambda p: _initiatives_metric(p) == "4", upstream)

        # a moderator's edit published through one process, seen through the other
        (up_a, (ctx_a, _)), (up_b, (_, page_b)) = sessions.items()
        editor = sign_in(ctx_a, base, MODERATOR, PROVIDER_PORT)
        assert _upstreams_of(log, _lb_cookie(ctx_a)) == {up_a}  # sign-in stayed sticky
        editor.goto(f"{base}/modifier?id=pau-sport")
        editor.get_by_label("Titre de l'initiative", exact=True).wait_for(timeout=60_000)
        text_input(editor, "Titre de l'initiative", "Sport à Pau, vu partout")
        wait_idle(editor)
        editor.get_by_role("button", name="Publier la modification").click()
        expect_text(editor, re.compile(r"Fiche publiée \(version 2\)"), "deploy_edit")
        page_b.goto(f"{base}/fiche?id=pau-sport")
        _until(page_b, lambda p: p.locator("h1").filter(
            has_text="Sport à Pau, vu partout").count() > 0, up_b)
        for context, _ in sessions.values():
            context.close()
        browser.close()
    # nginx logs a websocket when it closes: each process had its stream through the proxy
    streams = {line.split(" ", 1)[0] for line in log.read_text().splitlines()
               if "/_stcore/stream" in line}
    assert streams == set(sessions), streams
