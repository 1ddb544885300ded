"""``territoires serve``: caches filled first, then Streamlit's server with the options."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from territoires import cli
from territoires.app import serve


def _fake_streamlit(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    from streamlit.web import cli as stcli

    calls: list[list[str]] = []

    def main() -> None:
        calls.append(list(sys.argv))
        raise SystemExit(0)

    monkeypatch.setattr(stcli, "main", main)
    return calls


@pytest.mark.parametrize("no_warm", [False, True])
def test_serve_warms_then_runs_streamlit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         no_warm: bool) -> None:
    monkeypatch.setenv("TERRITOIRES_HOME", str(tmp_path))
    (tmp_path / "app.py").write_text("", encoding="utf-8")
    calls = _fake_streamlit(monkeypatch)
    order: list[str] = []
    monkeypatch.setattr(serve, "warm", lambda: order.append("warm") or True)
    monkeypatch.setattr(serve, "tune_allocators", lambda: order.append("tune") or [])
    monkeypatch.setattr(serve, "release_memory", lambda: order.append("release"))
    argv = ["serve", *(["--no-warm"] if no_warm else []), "--", "--server.port", "8675"]
    assert cli.main(argv) == 0
    assert calls == [["streamlit", "run", str(tmp_path / "app.py"),
                      "--server.fileWatcherType", "none", "--runner.postScriptGC", "false",
                      "--server.port", "8675"]]
    # allocators tuned before anything is loaded; the warm-up's freed pages handed back
    assert order == (["tune"] if no_warm else ["tune", "warm", "release"])
    assert sys.argv[0] != "streamlit"  # restored


def test_warm_reports_a_missing_geo_and_lets_the_server_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st

    st.cache_resource.clear()
    monkeypatch.setenv("TERRITOIRES_GEO_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("TERRITOIRES_DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite'}")
    out = io.StringIO()
    assert serve.warm(out) is False
    assert "préchargement interrompu" in out.getvalue()


def test_serve_without_app_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TERRITOIRES_HOME", str(tmp_path))
    calls = _fake_streamlit(monkeypatch)
    assert cli.main(["serve", "--no-warm"]) == 2
    assert calls == [] and "introuvable" in capsys.readouterr().err


@pytest.mark.parametrize("given", [["--server.fileWatcherType", "auto"],
                                   ["--server.fileWatcherType=auto"]])
def test_serve_defaults_yield_to_the_given_options(given: list[str]) -> None:
    argv = serve.streamlit_argv(Path("app.py"), [*given, "--server.port", "1"])
    assert argv == ["streamlit", "run", "app.py", "--runner.postScriptGC", "false", *given,
                    "--server.port", "1"]


def test_serve_turns_the_source_watcher_and_the_forced_collection_off() -> None:
    """Watching sources walks every imported module after each new session's first run
    (0.3-0.5 s of CPU each), and a full garbage collection after every rerun costs 60-150
    ms over the loaded layers: a served dashboard does neither."""
    argv = serve.streamlit_argv(Path("app.py"), [])
    assert argv[argv.index("--server.fileWatcherType") + 1] == "none"
    assert argv[argv.index("--runner.postScriptGC") + 1] == "false"


def test_warm_freezes_what_it_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from territoires.app import ui

    monkeypatch.setattr(ui, "warm_up", lambda report: {})
    gc.unfreeze()
    try:
        assert serve.warm(io.StringIO()) is True
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_tune_allocators_caps_arenas_and_gives_arrow_the_system_pool(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa

    before = pa.default_memory_pool()
    try:
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
        done = serve.tune_allocators()
        assert pa.default_memory_pool().backend_name == "system"
        assert "arrow system pool" in done
        if serve._libc() is not None:  # glibc
            assert f"malloc arenas {serve.MALLOC_ARENAS}" in done
        pa.set_memory_pool(before)
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", before.backend_name)
        assert "arrow system pool" not in serve.tune_allocators()
        assert pa.default_memory_pool().backend_name == before.backend_name  # left alone
        serve.release_memory()  # runs on any allocator
    finally:
        pa.set_memory_pool(before)
