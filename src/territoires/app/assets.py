"""Web assets of the maps (Leaflet, its plugins, their CSS) served by the app itself.

Folium points every map at public CDNs (jsDelivr, cdnjs, code.jquery.com): offline, on an
intranet, or behind a content security policy the map never draws. Here the same files are
fetched once from the npm registry (``npm pack``, the registry's ordinary client) at setup,
with pinned versions and the registry's pinned ``sha512`` integrity checked before anything
is unpacked, into the app's ``static/`` folder (git-ignored), which Streamlit serves at
``/app/static/…`` (``[server] enableStaticServing = true`` in ``.streamlit/config.toml``).

:func:`localise` then rewrites a folium map's script and style links to those files, file
by file, keeping the CDN address only for a file that is absent (fall-back), and drops the
CDN libraries our maps never use (Bootstrap, Font Awesome, awesome-markers) unless the map
has a ``folium.Icon``, and jQuery unless it has a ``folium.Popup``. A ``manifest.json``
beside the files records each file's ``sha256``; :func:`verify` re-checks them.

No streamlit import here (pure functions + the npm edge).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from territoires import config
from territoires.errors import TerritoiresError


class AssetError(TerritoiresError):
    """A web asset could not be fetched, or is not the pinned file."""


@dataclass(frozen=True)
class NpmPackage:
    """A pinned npm package and the files of it that the app serves."""

    name: str
    version: str
    #: ``dist.integrity`` of the registry (Subresource Integrity, sha512 of the tarball).
    integrity: str
    #: Paths inside the package (files or folders) copied to the static folder.
    paths: tuple[str, ...]

    @property
    def folder(self) -> str:
        """Folder under ``static/vendor/``."""
        return f"{self.name}-{self.version}"


#: What the maps need (versions = those folium and its MarkerCluster plugin ask for).
PACKAGES: tuple[NpmPackage, ...] = (
    NpmPackage(
        "leaflet", "1.9.3",
        "sha512-iB2cR9vAkDOu5l3HAay2obcUHZ7xwUBBjph8+PGtmW/2lYhbLizWtG7nTeYht36WfOslixQF9D/"
        "uSIzhZgGMfQ==",
        ("dist/leaflet.js", "dist/leaflet.css", "dist/images", "LICENSE"),
    ),
    NpmPackage(
        "leaflet.markercluster", "1.1.0",
        "sha512-eI+XkCiLiHwCC3uZ4/n4+Vq3rXcqEHN2lhHRVG1WVziy/3Q0TTipWkzEa1zO0dKZI2AnI5ppFDWrOjnQ"
        "7MJLKQ==",
        ("dist/leaflet.markercluster.js", "dist/MarkerCluster.css",
         "dist/MarkerCluster.Default.css", "MIT-LICENCE.txt"),
    ),
    NpmPackage(
        "jquery", "3.7.1",
        "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizg"
        "kpLfg==",
        ("dist/jquery.min.js", "LICENSE.txt"),
    ),
)

#: Accessibility engine injected by the browser tests (not served by the app).
AXE_CORE = NpmPackage(
    "axe-core", "4.11.0",
    "sha512-ilYanEU8vxxBexpJd8cWM4ElSQq4QctCLKih0TSfjIfCQTeyH/6zVrmIJfLPrKTKJRbiG+cfnZbQIjAlJmF"
    "1jQ==",
    ("axe.min.js", "LICENSE"),
)

_BY_NAME = {p.name: p for p in PACKAGES}

#: CDN address emitted by folium (``default_js`` / ``default_css``) -> (package, file).
CDN_FILES: dict[str, tuple[str, str]] = {
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js": ("leaflet", "dist/leaflet.js"),
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css":
        ("leaflet", "dist/leaflet.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/"
    "leaflet.markercluster.js": ("leaflet.markercluster", "dist/leaflet.markercluster.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.css":
        ("leaflet.markercluster", "dist/MarkerCluster.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/"
    "MarkerCluster.Default.css": ("leaflet.markercluster", "dist/MarkerCluster.Default.css"),
    "https://code.jquery.com/jquery-3.7.1.min.js": ("jquery", "dist/jquery.min.js"),
}

#: folium's default libraries that only ``folium.Icon`` markers use (our maps draw circles).
ICON_ONLY: frozenset[str] = frozenset({
    "bootstrap", "bootstrap_css", "glyphicons_css", "awesome_markers",
    "awesome_markers_font_css", "awesome_markers_css", "awesome_rotate_css",
})

#: folium's jQuery, used only by ``folium.Popup`` and a map's ``objects_to_stay_in_front``
#: (our layers bind their popups with Leaflet): one script fewer loaded, one after the
#: other, before a map draws.
JQUERY_ONLY: frozenset[str] = frozenset({"jquery"})

#: URL path where Streamlit serves the app's ``static/`` folder.
STATIC_URL = "/app/static"
MANIFEST = "manifest.json"


def static_dir() -> Path:
    """The app's ``static/`` folder (beside ``app.py``, which Streamlit serves):
    ``TERRITOIRES_STATIC_DIR``, else the project folder holding ``app.py``, else
    ``$TERRITOIRES_HOME/static``."""
    env = os.environ.get("TERRITOIRES_STATIC_DIR")
    if env:
        return Path(env).resolve()
    project = Path(__file__).resolve().parents[3]
    if (project / "app.py").is_file():
        return project / "static"
    return config.home() / "static"


def vendor_dir(static: Path | None = None) -> Path:
    """Folder of the fetched packages (``static/vendor``)."""
    return (static or static_dir()) / "vendor"


def sri_sha512(data: bytes) -> str:
    """Subresource-Integrity string (``sha512-<base64>``) of ``data``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _npm_pack(spec: str, dest: Path, timeout: float = 300) -> Path:
    """Download ``spec`` (``name@version``) from the npm registry into ``dest``."""
    npm = shutil.which("npm")
    if npm is None:
        raise AssetError("npm est introuvable : installez-le (paquet Debian « npm ») pour "
                         "récupérer les bibliothèques de la carte.")
    try:
        out = subprocess.run([npm, "pack", spec, "--json", "--silent"], cwd=dest, check=True,
                             capture_output=True, text=True, timeout=timeout)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", "") or ""
        raise AssetError(f"npm pack {spec} a échoué : {detail.strip()[:500]}") from exc
    try:
        filename = json.loads(out.stdout)[0]["filename"]
    except (ValueError, LookupError, TypeError):
        tgz = sorted(dest.glob("*.tgz"))
        if not tgz:
            raise AssetError(f"npm pack {spec} n'a produit aucune archive") from None
        return tgz[0]
    return dest / filename


def _within(path: PurePosixPath, listed: PurePosixPath) -> bool:
    """``path`` is the listed file or lies in the listed folder."""
    return path == listed or listed in path.parents


def unpack(package: NpmPackage, tarball: Path, target: Path) -> list[Path]:
    """Check ``tarball`` against the pinned integrity, then copy the package's
    :attr:`NpmPackage.paths` into ``target``; returns the files written."""
    data = tarball.read_bytes()
    got = sri_sha512(data)
    if got != package.integrity:
        raise AssetError(f"{package.name}@{package.version} : empreinte inattendue "
                         f"(attendue {package.integrity}, obtenue {got}) ; fichier refusé.")
    # only the regular files under the listed paths are read, member by member (no
    # ``extractall``: its ``filter`` argument is missing from Python 3.11.0-3.11.3, and
    # nothing but those files, no link, no path outside ``target``, is ever written)
    wanted = [PurePosixPath(rel) for rel in package.paths]
    chosen: dict[PurePosixPath, tarfile.TarInfo] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            if not member.isfile() or len(parts) < 2 or parts[0] != "package" \
                    or any(part in ("..", "") for part in parts):
                continue
            rel = PurePosixPath(*parts[1:])
            if any(_within(rel, w) for w in wanted):
                chosen[rel] = member
        for w in wanted:
            if not any(_within(rel, w) for rel in chosen):
                raise AssetError(f"{package.name}@{package.version} : « {w} » absent du "
                                 "paquet.")
        if target.exists():
            shutil.rmtree(target)
        written: list[Path] = []
        for rel in sorted(chosen):
            source = tar.extractfile(chosen[rel])
            if source is None:
                continue
            dest = target.joinpath(*rel.parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with source, dest.open("wb") as out:
                shutil.copyfileobj(source, out)
            written.append(dest)
    return written


def fetch(packages: Iterable[NpmPackage] | None = None, static: Path | None = None,
          force: bool = False) -> list[str]:
    """Fetch ``packages`` from the npm registry into ``static/vendor`` (skipped when present
    and intact, unless ``force``) and write the manifest; returns one French line per
    package (``packages``: :data:`PACKAGES` by default)."""
    vendor = vendor_dir(static)
    vendor.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(vendor)
    lines = []
    for package in PACKAGES if packages is None else packages:
        target = vendor / package.folder
        if not force and _intact(package, vendor, manifest):
            lines.append(f"{package.name}@{package.version} : déjà présent ({target})")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            tarball = _npm_pack(f"{package.name}@{package.version}", Path(tmp))
            files = unpack(package, tarball, target)
        manifest[package.folder] = {
            "name": package.name, "version": package.version, "integrity": package.integrity,
            "files": {f.relative_to(target).as_posix(): _sha256(f) for f in files},
        }
        (vendor / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True),
                                       encoding="utf-8")
        lines.append(f"{package.name}@{package.version} : {len(files)} fichiers vérifiés "
                     f"dans {target}")
    return lines


def _read_manifest(vendor: Path) -> dict:
    try:
        return json.loads((vendor / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _intact(package: NpmPackage, vendor: Path, manifest: dict) -> bool:
    entry = manifest.get(package.folder)
    if not entry or entry.get("integrity") != package.integrity:
        return False
    target = vendor / package.folder
    files = entry.get("files") or {}
    return bool(files) and all(
        (target / rel).is_file() and _sha256(target / rel) == digest
        for rel, digest in files.items())


def verify(static: Path | None = None,
           packages: Iterable[NpmPackage] | None = None) -> list[str]:
    """Problems found in the fetched files (missing, altered), empty when all is well."""
    vendor = vendor_dir(static)
    manifest = _read_manifest(vendor)
    problems = []
    for package in PACKAGES if packages is None else packages:
        if not _intact(package, vendor, manifest):
            problems.append(f"{package.name}@{package.version} : absent ou modifié dans "
                            f"{vendor / package.folder} (territoires assets fetch)")
    return problems


def local_file(url: str, static: Path | None = None) -> Path | None:
    """The fetched copy of a CDN ``url`` folium emits, or None if unknown or absent."""
    known = CDN_FILES.get(url)
    if known is None:
        return None
    name, rel = known
    path = vendor_dir(static) / _BY_NAME[name].folder / rel
    return path if path.is_file() else None


def static_url(url: str, static: Path | None = None, base_path: str = "") -> str:
    """The app's own URL for a CDN ``url`` when its copy is present, else ``url``."""
    path = local_file(url, static)
    if path is None:
        return url
    return served_url(path.relative_to(static or static_dir()).as_posix(), base_path)


def served_url(rel: str, base_path: str = "") -> str:
    """URL at which Streamlit serves ``static/<rel>`` (under ``base_path``, the server's
    ``baseUrlPath``)."""
    base = "/" + base_path.strip("/") if base_path.strip("/") else ""
    return f"{base}{STATIC_URL}/{rel}"


def write_once(folder: Path, name: str, text: str) -> None:
    """Write ``text`` to ``folder/name`` unless the file is there: to a temporary file
    first, then renamed (a reader never sees a part of it)."""
    path = folder / name
    if path.is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=Path(name).suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)  # a static file like the others (mkstemp makes it private)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_matching(folder: Path, pattern: str) -> int:
    """Remove the files of ``folder`` matching ``pattern``; returns how many were removed
    (a file that cannot be removed, or an absent folder, is skipped)."""
    removed = 0
    for path in folder.glob(pattern):
        try:
            path.unlink()
        except OSError:
            continue
        removed += 1
    return removed


def walk(element: object) -> Iterator[object]:
    """``element`` (a folium/branca element) and every element under it, parents first."""
    yield element
    for child in getattr(element, "_children", {}).values():
        yield from walk(child)


def localise(fmap: object, static: Path | None = None, base_path: str = "") -> object:
    """Point every script and style sheet of the folium map ``fmap`` (and of its plugins) at
    the app's copies where present (CDN otherwise), dropping the icon-only libraries when
    the map has no ``folium.Icon``. Changes the elements in place; returns ``fmap``."""
    import folium

    elements = list(walk(fmap))
    dropped = set() if any(isinstance(e, folium.Icon) for e in elements) else set(ICON_ONLY)
    if not any(isinstance(e, folium.Popup) or getattr(e, "objects_to_stay_in_front", None)
               for e in elements):
        dropped |= JQUERY_ONLY
    for element in elements:
        for attr in ("default_js", "default_css"):
            links = getattr(element, attr, None)
            if not links:
                continue
            setattr(element, attr, [
                (name, static_url(url, static, base_path)) for name, url in links
                if name not in dropped
            ])
    return fmap


#: folium's viewport tag forbids zooming (WCAG 1.4.4, RGAA 10.4): the map lets users zoom.
_NO_ZOOM = re.compile(r",?\s*maximum-scale=1\.0,\s*user-scalable=no")


def allow_zoom(fmap: object) -> object:
    """Drop ``maximum-scale=1.0, user-scalable=no`` from the viewport tag folium writes in
    the map's header, each time the map renders. Returns ``fmap``."""
    from branca.element import Element

    original = fmap.render  # type: ignore[attr-defined]

    def render(**kwargs: object) -> None:
        original(**kwargs)
        header = fmap.get_root().header  # type: ignore[attr-defined]
        name = fmap.get_name()  # type: ignore[attr-defined]
        element = header._children.get(name)
        if element is not None:
            text = element.render()
            if _NO_ZOOM.search(text):
                header._children[name] = Element(_NO_ZOOM.sub("", text))

    fmap.render = render  # type: ignore[attr-defined]
    return fmap
