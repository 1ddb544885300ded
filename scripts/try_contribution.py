"""Try contribution on one machine, without an external identity provider.

Starts ``oidc-provider-mock`` (a real OpenID Connect provider for tests) on 127.0.0.1 and the
dashboard with a secrets file pointing to it (written under the git-ignored ``.cache/``), and
names the first administrator. On the provider's page, type an e-mail address in the "sub"
box and press "Authorize": that address is the identity the app sees.

    pip install -e '.[test]'        # installs oidc-provider-mock
    python scripts/try_contribution.py --admin moi@example.fr

Stop with Ctrl+C or ``kill PID`` (both servers stop).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]


def secrets_toml(app_port: int, provider_port: int) -> str:
    """The ``[auth]`` section for a local provider (test-only values)."""
    return (
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "territoires-local"\n'
        'client_secret = "local-trial-only"\n'
        f'server_metadata_url = "http://127.0.0.1:{provider_port}/.well-known/'
        'openid-configuration"\n'
        'client_kwargs = { scope = "openid email profile" }\n'
    )


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    """Wait until ``url`` answers (or ``proc`` dies)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"Le serveur s'est arrêté (code {proc.returncode}) : {url}")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"Pas de réponse de {url} après {seconds:.0f} s")


def main(argv: list[str] | None = None) -> int:
    """Start the provider and the app; block until Ctrl+C."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--admin", help="e-mail du premier administrateur")
    p.add_argument("--port", type=int, default=8501, help="port de l'application")
    p.add_argument("--provider-port", type=int, default=9400, help="port du fournisseur")
    args = p.parse_args(argv)

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # `kill PID` stops both servers too
    folder = REPO / ".cache" / "try-contribution"
    folder.mkdir(parents=True, exist_ok=True)
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text(secrets_toml(args.port, args.provider_port), encoding="utf-8")
    if args.admin:
        subprocess.run([sys.executable, "-m", "territoires.cli", "users", "grant", args.admin,
                        "admin"], check=True, cwd=REPO)
    provider = subprocess.Popen([sys.executable, "-m", "oidc_provider_mock", "--host",
                                 "127.0.0.1", "--port", str(args.provider_port)])
    app = None
    try:
        wait_for(f"http://127.0.0.1:{args.provider_port}/.well-known/openid-configuration",
                 provider)
        app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
                                "--server.address", "127.0.0.1", "--server.port",
                                str(args.port), "--server.headless", "true",
                                "--secrets.files", str(secrets_file)],
                               cwd=REPO, env={**os.environ})
        wait_for(f"http://127.0.0.1:{args.port}/_stcore/health", app)
        print(f"\nTerritoires : http://127.0.0.1:{args.port} — « Se connecter », puis tapez "
              "votre e-mail dans la case « sub » du fournisseur de test.\n", flush=True)
        app.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (app, provider):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
