"""``territoires serve``: the Streamlit server of the dashboard, warmed before it listens.

Streamlit has no start-up hook: ``streamlit run app.py`` loads nothing until the first
session runs the script, so the first visitor of a fresh server paid, inside the request,
the layers, the territory index, the catalogue and its preparation (15.7 s to the first map
at seed scale, 35 s at 50,000 initiatives, issue 13). This module fills the process caches
(:func:`territoires.app.ui.warm_up`) and only then starts Streamlit's server in the same
process (``streamlit.web.cli``), so the health check (``/_stcore/health``) answers once the
data is loaded: a load balancer or ``systemd`` sends no user to a cold process. Sessions of
that process then share the warmed ``st.cache_resource`` entries.

Memory (issue 13): before anything is loaded, :func:`tune_allocators` caps glibc's malloc
arenas at :data:`MALLOC_ARENAS` (``mallopt(M_ARENA_MAX)``: the ``MALLOC_ARENA_MAX`` variable is
read by glibc only when a process starts, setting it in ``os.environ`` here would do nothing;
by default each thread touching memory may get its own arena, up to 8 per core, that keeps
its freed pages) and gives Arrow (pandas' text columns, Parquet reads) the system allocator
instead of its mimalloc pool, which keeps freed pages too (``ARROW_DEFAULT_MEMORY_POOL``, when
set, is left alone). After the warm-up, :func:`release_memory` hands the freed pages back.
While the server runs, a :class:`MemoryTrimmer` thread does the same (``malloc_trim``, 1-2 ms)
once no script runs and the process has grown: the pages a burst of sessions freed are given
back instead of staying in glibc's arenas (20 concurrent first visits at 50,000 initiatives
left the process up to 160 MB larger than the same visits one by one). And at most
:data:`SCRIPT_SLOTS` page runs proceed at once (:func:`script_slot`): the others wait their
turn, so that a burst of visitors holds the temporary tables of a few runs, not of all of
them (20 concurrent first visits raised the process by 200-250 MB at 50,000 initiatives).

In front of Streamlit's web server (:func:`front`): the app's own HTML page for the pages'
addresses (:mod:`territoires.app.index_page`: French from the first byte, no 404 and 100 ms
wait on a shared link) and the immutable caching of the files named by their content
(:mod:`territoires.app.static_cache`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from territoires import config
from territoires.errors import TerritoiresError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

_LOG = logging.getLogger(__name__)

#: glibc malloc arenas of a server process (``mallopt(M_ARENA_MAX)``).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


def _libc() -> ctypes.CDLL | None:
    """glibc, or None (another C library: musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def tune_allocators() -> list[str]:
    """Cap glibc's malloc arenas and give Arrow the system allocator (see the module
    docstring); call before loading anything and before threads start. Returns what was
    set (nothing on another C library, Arrow's pool kept when ``ARROW_DEFAULT_MEMORY_POOL``
    says so)."""
    done = []
    libc = _libc()
    if libc is not None and libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS) == 1:
        done.append(f"malloc arenas {MALLOC_ARENAS}")
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())
        done.append("arrow system pool")
    return done


def release_memory() -> None:
    """Hand back to the system the pages freed by the warm-up (its temporary tables):
    garbage collection, Arrow's pool, then glibc's ``malloc_trim``."""
    gc.collect()
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


#: page runs that proceed at once in a server process (:func:`script_slot`). Python runs one
#: thread at a time, so more would not finish sooner: 20 runs at once each took the time of
#: 20 and each held its temporary tables all along. One per core, at least 2, at most 4:
#: with 4 on 2 cores, 20 concurrent first visits at 50,000 initiatives peaked at 737-776 MB
#: and took 1.0-1.5 s (median), against 720-735 MB and 0.7 s with 2. A slow run (an import of
#: a large file, up to 30 s) holds one slot meanwhile: the others serve everyone else.
SCRIPT_SLOTS = max(2, min(4, os.cpu_count() or 2))
_slots = threading.BoundedSemaphore(SCRIPT_SLOTS)


@contextmanager
def script_slot() -> Iterator[None]:
    """Wait for one of the :data:`SCRIPT_SLOTS` page runs, hold it for the block."""
    with _slots:
        yield


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process, this one by default (MB, ``/proc/<pid>/statm``; 0 where
    there is none)."""
    try:
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return resident * os.sysconf("SC_PAGE_SIZE") / 2**20


def scripts_running() -> bool:
    """True while a Streamlit script run (its ``ScriptRunner.scriptThread``) is alive."""
    return any(t.name.startswith("ScriptRunner.scriptThread") for t in threading.enumerate())


class MemoryTrimmer:
    """Hands the pages freed by script runs back to the system when the scripts are quiet.

    Every ``interval`` seconds, :meth:`step` calls ``trim`` (glibc's ``malloc_trim``) if no
    script runs (``busy``) and the resident memory (``rss``, MB) has grown by ``min_growth``
    since the last trim; the functions are parameters so that tests can drive it."""

    def __init__(self, trim: Callable[[], object], *, rss: Callable[[], float] = rss_mb,
                 busy: Callable[[], bool] = scripts_running, interval: float = 2.0,
                 min_growth: float = 8.0) -> None:
        self._trim, self._rss, self._busy = trim, rss, busy
        self.interval, self.min_growth = interval, min_growth
        self.baseline = rss()
        self.trims = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> bool:
        """One look: trim when quiet and grown; True when it trimmed."""
        if self._busy() or self._rss() < self.baseline + self.min_growth:
            return False
        self._trim()
        self.trims += 1
        self.baseline = self._rss()
        return True

    def start(self) -> MemoryTrimmer:
        """Run :meth:`step` every ``interval`` seconds in a daemon thread."""
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.step()

        self._thread = threading.Thread(target=loop, name="territoires-memory-trimmer",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the thread (at its next look)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def start_memory_trimmer() -> MemoryTrimmer | None:
    """A started :class:`MemoryTrimmer` on glibc's ``malloc_trim`` (None on another C
    library)."""
    libc = _libc()
    if libc is None:
        return None
    return MemoryTrimmer(lambda: libc.malloc_trim(0)).start()


def app_script() -> Path:
    """The router script ``app.py`` of the installation (``TERRITOIRES_HOME``)."""
    return config.home() / "app.py"


def warm(out: object = sys.stderr) -> bool:
    """Fill the caches (see :func:`territoires.app.ui.warm_up`), printing each step's time
    on ``out``; False (and the error printed) when a step fails: the server still starts and
    its pages show the error to users."""
    from territoires.app import ui

    t0 = time.perf_counter()

    def report(step: str, seconds: float) -> None:
        print(f"préchargement : {step} {seconds:.1f} s", file=out, flush=True)

    # outside a session Streamlit logs "missing ScriptRunContext" at each cached call
    quiet = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        ui.warm_up(report)
    except TerritoiresError as exc:
        print(f"préchargement interrompu : {exc}", file=out, flush=True)
        return False
    finally:
        quiet.setLevel(level)
    # what the warm-up loaded lives as long as the process: out of the collector's passes
    gc.collect()
    gc.freeze()
    print(f"préchargement terminé en {time.perf_counter() - t0:.1f} s", file=out, flush=True)
    return True


#: Streamlit options ``territoires serve`` sets unless given:
#:
#: - no watching of the source files (a development aid: after each session's first
#:   script run, Streamlit walks every imported module to watch its file, 0.3-0.5 s of CPU
#:   per new session here, which 20 visitors arriving together paid one after another);
#: - no full garbage collection after every script run (``gc.collect(2)``: 60-150 ms per
#:   rerun over the ~600 MB of layers and catalogue, 80 % of a warm Carte rerun's CPU).
#:   Python's own collector still runs; :func:`warm` freezes what the warm-up loaded out
#:   of its reach (``gc.freeze``), so that its passes stay short.
SERVE_DEFAULTS: tuple[tuple[str, str], ...] = (("server.fileWatcherType", "none"),
                                               ("runner.postScriptGC", "false"))


def streamlit_argv(script: Path, streamlit_args: list[str]) -> list[str]:
    """``streamlit run script`` with ``streamlit_args`` and :data:`SERVE_DEFAULTS` (those
    not given in ``streamlit_args``, as ``--name value`` or ``--name=value``)."""
    given = {arg[2:].split("=", 1)[0] for arg in streamlit_args if arg.startswith("--")}
    extra = [part for name, value in SERVE_DEFAULTS if name not in given
             for part in (f"--{name}", value)]
    return ["streamlit", "run", str(script), *extra, *streamlit_args]


_front = False


def front_installed() -> bool:
    """True while this process's Streamlit server has :func:`front` before it: the pages are
    French from their first byte (the app needs no script for it)."""
    return _front


@contextmanager
def front(app_dir: Path, title: str) -> Iterator[bool]:
    """Within the block, the application that Streamlit's server creates stands behind the
    app's own HTML page (:class:`territoires.app.index_page.IndexPage`, for the pages of
    ``app_dir`` titled ``title``) and the immutable caching of the files named by their
    content (:class:`territoires.app.static_cache.ImmutableFiles`).

    Streamlit has no setting for either; its public way to add middleware (``st.App``)
    needs the app behind another entry script, which moves the app's static folder and its
    script-level settings (``config._main_script_path``) away from the project folder. So
    this wraps the function Streamlit's server calls to create its application
    (``starlette_server.create_starlette_app``, called by ``Server.start``), and puts it
    back after. Yields False, with a warning, when this Streamlit has no such function or no
    ``index.html``: it then serves as it does under ``streamlit run``."""
    global _front
    from territoires.app import index_page, static_cache

    try:
        from streamlit import config as st_config
        from streamlit import file_util
        from streamlit.web.server.starlette import starlette_server
        create = starlette_server.create_starlette_app
        index_html = (Path(file_util.get_static_dir()) / "index.html").read_text(
            encoding="utf-8")
    except (ImportError, AttributeError, OSError) as exc:
        _LOG.warning("serveur de Streamlit sans la page de l'application : %s", exc)
        yield False
        return
    pages = index_page.app_pages(app_dir)

    def create_behind_front(runtime: object) -> ASGIApp:
        app = create(runtime)
        base = index_page.base_path(st_config.get_option("server.baseUrlPath"))
        app = static_cache.ImmutableFiles(app, static_cache.immutable_paths(base))
        try:
            html = index_page.pages_html(index_html, base, pages, title)
        except ValueError as exc:
            _LOG.warning("page d'accueil de Streamlit servie telle quelle : %s", exc)
            return app
        return index_page.IndexPage(app, html)

    starlette_server.create_starlette_app = create_behind_front
    _front = True
    try:
        yield True
    finally:
        starlette_server.create_starlette_app = create
        _front = False


def serve(streamlit_args: list[str], *, warm_first: bool = True) -> int:
    """Warm the caches, then run ``streamlit run app.py *streamlit_args`` in this process
    (returns when the server stops), with :data:`SERVE_DEFAULTS`, behind :func:`front`."""
    from streamlit.web import cli as stcli

    from territoires.app import ui

    script = app_script()
    if not script.is_file():
        print(f"Erreur : {script} introuvable (lancez la commande depuis le dossier du projet "
              "ou définissez TERRITOIRES_HOME).", file=sys.stderr)
        return 2
    tune_allocators()
    if warm_first:
        warm()
        release_memory()
    trimmer = start_memory_trimmer()
    argv = sys.argv
    sys.argv = streamlit_argv(script, streamlit_args)
    try:
        with front(script.parent, ui.APP_TITLE):
            stcli.main()  # click: exits through SystemExit
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = argv
        if trimmer is not None:
            trimmer.stop()
    return 0
