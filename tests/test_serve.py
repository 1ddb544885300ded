"""``territoires serve``: caches filled first, then Streamlit's server with the options."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from asgi_support import asgi_request
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

    class Trimmer:
        def stop(self) -> None:
            order.append("trimmer stopped")

    def start() -> Trimmer:
        order.append("trimmer started")
        return Trimmer()

    monkeypatch.setattr(serve, "start_memory_trimmer", start)
    argv = ["serve", *(["--no-warm"] if no_warm else []), "--", "--server.port", "8675"]
    assert cli.main(argv) == 0
    assert calls == [["streamlit", "run", str(tmp_path / "app.py"),
                      "--server.fileWatcherType", "none", "--runner.postScriptGC", "false",
                      "--server.port", "8675"]]
    # allocators tuned before anything is loaded; the warm-up's freed pages handed back
    # and, while the server runs, the pages freed by script runs
    assert order == (["tune"] if no_warm else ["tune", "warm", "release"]) + [
        "trimmer started", "trimmer stopped"]
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


def test_memory_trimmer_trims_once_quiet_and_grown() -> None:
    """After a burst of sessions the pages they freed go back to the system, but never while
    a script runs, nor when the process has not grown since the last trim."""
    rss = [500.0]
    busy = [False]
    trims: list[float] = []

    def trim() -> None:
        trims.append(rss[0])
        rss[0] -= 30  # what malloc_trim gives back

    trimmer = serve.MemoryTrimmer(trim, rss=lambda: rss[0], busy=lambda: busy[0],
                                  min_growth=8)
    assert not trimmer.step()  # not grown
    rss[0] = 520
    busy[0] = True
    assert not trimmer.step()  # a script runs
    busy[0] = False
    assert trimmer.step() and trims == [520]
    assert trimmer.baseline == 490
    rss[0] = 495
    assert not trimmer.step()  # grown by less than min_growth since the trim
    rss[0] = 499
    assert trimmer.step() and trims == [520, 499]


def test_memory_trimmer_thread_and_script_detection() -> None:
    import threading

    assert not serve.scripts_running()
    release = threading.Event()
    script = threading.Thread(target=release.wait, name="ScriptRunner.scriptThread")
    script.start()
    try:
        assert serve.scripts_running()
    finally:
        release.set()
        script.join()
    assert serve.rss_mb() > 10
    done = threading.Event()
    trimmer = serve.MemoryTrimmer(done.set, rss=lambda: 1000.0, busy=lambda: False,
                                  interval=0.01).start()
    trimmer.baseline = 0.0
    assert done.wait(5)
    trimmer.stop()
    assert trimmer.trims >= 1
    if serve._libc() is not None:
        real = serve.start_memory_trimmer()
        assert real is not None
        real.stop()


def test_script_slots_bound_the_runs_at_once() -> None:
    """However many sessions run at once, at most SCRIPT_SLOTS page runs proceed; the
    others wait and all finish."""
    import threading
    import time

    lock = threading.Lock()
    active = [0, 0]  # now, most seen
    done: list[int] = []

    def run(i: int) -> None:
        with serve.script_slot():
            with lock:
                active[0] += 1
                active[1] = max(active[1], active[0])
            time.sleep(0.02)
            with lock:
                active[0] -= 1
        done.append(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(serve.SCRIPT_SLOTS + 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert active[1] == serve.SCRIPT_SLOTS
    assert sorted(done) == list(range(serve.SCRIPT_SLOTS + 4))
    with pytest.raises(RuntimeError), serve.script_slot():  # a failed run frees its slot
        raise RuntimeError
    assert all(serve._slots.acquire(blocking=False) for _ in range(serve.SCRIPT_SLOTS))
    for _ in range(serve.SCRIPT_SLOTS):
        serve._slots.release()


def test_front_wraps_streamlits_application_and_puts_it_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within ``front``, the application Streamlit's server creates stands behind the app's
    HTML page and the immutable caching of the content-named files; after, as before."""
    from streamlit import config as st_config
    from streamlit.web.server.starlette import starlette_server

    from territoires.app import index_page, static_cache

    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "carte.py").write_text("", encoding="utf-8")
    asked: list[str] = []

    async def streamlit(scope: dict, receive: object, send: object) -> None:
        asked.append(scope["path"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"cache-control", b"no-cache")]})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"x"})  # type: ignore[operator]

    created: list[object] = []

    def fake_create(runtime: object) -> object:
        created.append(runtime)
        return streamlit

    monkeypatch.setattr(starlette_server, "create_starlette_app", fake_create)
    st_config.set_option("server.baseUrlPath", "/territoires/")
    try:
        assert not serve.front_installed()
        with serve.front(tmp_path, "Titre") as done:
            assert done and serve.front_installed()
            app = starlette_server.create_starlette_app("runtime")
            assert created == ["runtime"] and isinstance(app, index_page.IndexPage)
            assert isinstance(app.app, static_cache.ImmutableFiles)
            assert set(app.pages) == {"/territoires/", "/territoires", "/territoires/carte"}
            start, body = asgi_request(app, "GET", "/territoires/carte")
            html = body["body"].decode()
            assert start["status"] == 200 and asked == []
            assert '<html lang="fr">' in html and "<title>Titre</title>" in html
            assert '{"base": "/territoires", "page": "/territoires/carte"}' in html
            layer = "/territoires/app/static/layers/" + "a" * 64 + ".json"
            start, _ = asgi_request(app, "GET", layer)
            assert dict(start["headers"])[b"cache-control"] == static_cache.IMMUTABLE
            start, _ = asgi_request(app, "GET", "/territoires/_stcore/health")
            assert dict(start["headers"])[b"cache-control"] == b"no-cache"
            assert asked == [layer, "/territoires/_stcore/health"]
        assert starlette_server.create_starlette_app is fake_create
        assert not serve.front_installed()
    finally:
        st_config.set_option("server.baseUrlPath", "")


def test_front_without_streamlits_hook_serves_as_streamlit_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from streamlit.web.server.starlette import starlette_server

    monkeypatch.delattr(starlette_server, "create_starlette_app")
    with serve.front(tmp_path, "T") as done:
        assert not done and not serve.front_installed()
    assert "sans la page de l'application" in caplog.text


def test_serve_runs_streamlit_behind_the_front(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.web import cli as stcli

    monkeypatch.setenv("TERRITOIRES_HOME", str(tmp_path))
    (tmp_path / "app.py").write_text("", encoding="utf-8")
    seen: list[bool] = []

    def main() -> None:
        seen.append(serve.front_installed())
        raise SystemExit(0)

    monkeypatch.setattr(stcli, "main", main)
    monkeypatch.setattr(serve, "start_memory_trimmer", lambda: None)
    assert serve.serve([], warm_first=False) == 0
    assert seen == [True] and not serve.front_installed()
