"""Registry of the official open-data sources, and fetching them into the cache.

Two ways to fill the cache (``config.cache_dir()``, git-ignored):

* **official**: download each source's official file(s) from its producer into
  ``<cache>/official/<source name>/…`` (archives are extracted there, atomically);
* **mirror**: copy the files of an offline mirror (``TERRITOIRES_MIRROR`` or ``--mirror``)
  into ``<cache>/mirror/<relative path in the mirror>``, keeping the mirror's layout.

:mod:`territoires.pipeline.build` then reads whichever is present and knows from the folder which
format it reads. Every fetch updates the committed manifest ``data/sources.json`` (sorted,
deterministic, no timestamps): per source its producer, licence, URL, version and, per file,
its relative path, size, sha256 and origin.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import requests
from tqdm import tqdm

from territoires.errors import SourceError

LICENCE = "Licence Ouverte 2.0"
OFFICIAL = "official"
MIRROR = "mirror"
USER_AGENT = "territoires/0.1 (+https://github.com/ ; données publiques)"

_ANCT_CIVILLE = (
    "https://raw.githubusercontent.com/anct-carto/ci-ville/"
    "7465bbcfc6be5fbf454cff9ea5f25d4a31ce5f91/src/assets/"
)
_ANCT_CIVILLE2 = (
    "https://raw.githubusercontent.com/anct-carto/ci-ville2/"
    "c4110278f334830e8fc67047729926275cec4c78/src/assets/"
)
_GREGOIRE = (
    "https://raw.githubusercontent.com/gregoiredavid/france-geojson/"
    "5d34ee6d0140c29f785fdb047d9329f1aab58833/"
)
_CONTOURS_2018 = "communes/contours_2018_gregoiredavid/"
#: Every département file of the mirror's 2018 commune contours (the folder is read, not a
#: fixed list: a mirror holding more or fewer départements is used as it is).
COMMUNE_CONTOURS_GLOB = _CONTOURS_2018 + "communes-*.geojson"
#: The mirror's national QPV layer (all 1,584 QPV 2024, simplified) and its full-resolution
#: subset (41 QPV), preferred where both have the same code.
QPV_NATIONAL_MIRROR = "qpv/qpv2024_complete_1584_derived.geojson"
QPV_SUBSET_MIRROR = "qpv/qpv2024_subset_33_17_64_86.geojson"
#: The mirror's third-party republication of the SIG Ville QPV population figures.
QPV_POPULATION_COPY = "qpv/qpv2024_population_by_qpv_derived.csv"


@dataclass(frozen=True)
class Download:
    """One official file: its URL, the name it gets in the cache and, for an archive
    (``zip`` or ``tgz``), the members to extract (all when empty)."""

    url: str
    filename: str
    archive: str | None = None
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class Source:
    """One source of the registry."""

    name: str
    title: str
    producer: str
    url: str
    version: str
    downloads: tuple[Download, ...]
    mirror_paths: tuple[str, ...]
    required: bool = True
    licence: str = LICENCE
    #: the mirror paths are alternative forms: a required source needs at least one of them
    mirror_any: bool = False


def _json_files(base: str, names: Iterable[str]) -> tuple[Download, ...]:
    return tuple(Download(base + n, n) for n in names)


_FUNDING_V1 = [f"adulte-relais-{y}.json" for y in range(2020, 2024)] + [
    f"postes-fonjep-{y}.json" for y in range(2020, 2024)
]
_FUNDING_V2 = [f"adulte-relais-{y}.json" for y in (2024, 2025)] + [
    f"postes-fonjep-{y}.json" for y in (2024, 2025)
]

QPV_ZIP_MEMBER = "GEOJSON/QP2024_France_Hexagonale_Outre_Mer_WGS84.geojson"
COG_MEMBERS = tuple(
    f"package/data/{n}.json" for n in ("communes", "epci", "departements", "regions")
)

REGISTRY: tuple[Source, ...] = (
    Source(
        name="qpv",
        title="Quartiers prioritaires 2024 (contours)",
        producer="ANCT (SIG Ville)",
        url="https://www.data.gouv.fr/fr/datasets/r/942d4ee8-8142-4556-8ea1-335537ce1119",
        version="QPV 2024",
        downloads=(
            Download(
                "https://www.data.gouv.fr/fr/datasets/r/942d4ee8-8142-4556-8ea1-335537ce1119",
                "qpv2024.zip",
                archive="zip",
                members=(QPV_ZIP_MEMBER,),
            ),
        ),
        # the national file first; the older partial forms (subset + centroids + code list)
        # are still read from a mirror without it
        mirror_paths=(
            QPV_NATIONAL_MIRROR,
            QPV_SUBSET_MIRROR,
            "qpv/qpv2024_centroids_by_commune_anct.geojson",
            "qpv/qpv2024_code_list_derived.csv",
        ),
        mirror_any=True,
    ),
    Source(
        name="qpv_population",
        title="Population des QPV 2024 (INSEE)",
        producer="INSEE",
        url="https://www.insee.fr/fr/statistiques/8210600",
        version="pop_QPV24",
        downloads=(
            Download("https://www.insee.fr/fr/statistiques/fichier/8210600/pop_QPV24.csv",
                     "pop_QPV24.csv"),
        ),
        mirror_paths=("qpv/pop_QPV24.csv",),
        required=False,
    ),
    Source(
        name="qpv_population_copy",
        title="Population des QPV 2024 (chiffres SIG Ville republiés par un tiers)",
        producer="SIG Ville (ANCT / INSEE), republication tierce (GitHub RemiG1984/MaFrance)",
        url="https://github.com/RemiG1984/MaFrance/blob/8ecb4e38ae6b093d21580376f42b976e31286e3e"
        "/setup/inputFiles/analyse_qpv.csv",
        version="population municipale, géographie 2024 (copie non officielle)",
        # offline fallback only: online, INSEE's pop_QPV24.csv is the source
        downloads=(),
        mirror_paths=(QPV_POPULATION_COPY,),
        required=False,
    ),
    Source(
        name="cog",
        title="Code officiel géographique 2026 (communes, EPCI, départements, régions)",
        producer="INSEE / DGCL, paquet @etalab/decoupage-administratif",
        url="https://registry.npmjs.org/@etalab/decoupage-administratif/-/"
        "decoupage-administratif-6.0.0.tgz",
        version="COG 2026 (decoupage-administratif 6.0.0)",
        downloads=(
            Download(
                "https://registry.npmjs.org/@etalab/decoupage-administratif/-/"
                "decoupage-administratif-6.0.0.tgz",
                "decoupage-administratif-6.0.0.tgz",
                archive="tgz",
                members=COG_MEMBERS,
            ),
        ),
        mirror_paths=tuple(
            f"communes/cog2026_etalab/{n}.json"
            for n in ("communes", "epci", "departements", "regions")
        ),
    ),
    Source(
        name="communes_contours",
        title="Contours des communes",
        producer="IGN / Etalab (API Découpage administratif)",
        url="https://geo.api.gouv.fr/communes?fields=code,nom,population,codeEpci,"
        "codeDepartement,codeRegion&format=geojson&geometry=contour",
        version="géographie en vigueur (miroir : contours 2018 simplifiés)",
        downloads=(
            Download(
                "https://geo.api.gouv.fr/communes?fields=code,nom,population,codeEpci,"
                "codeDepartement,codeRegion&format=geojson&geometry=contour",
                "communes.geojson",
            ),
        ),
        mirror_paths=(COMMUNE_CONTOURS_GLOB,),
        required=False,
    ),
    Source(
        name="admin_contours",
        title="Contours des départements et régions (simplifiés)",
        producer="IGN (GEOFLA 2018) via france-geojson",
        url=_GREGOIRE,
        version="2018",
        downloads=_json_files(
            _GREGOIRE,
            ["departements-version-simplifiee.geojson", "regions-version-simplifiee.geojson"],
        ),
        mirror_paths=(
            _CONTOURS_2018 + "departements-avec-outre-mer.geojson",
            _CONTOURS_2018 + "departements-version-simplifiee.geojson",
            _CONTOURS_2018 + "regions-version-simplifiee.geojson",
        ),
        required=False,
    ),
    Source(
        name="contrats_ville",
        title="Contrats de ville (centroïdes, 2015-2023 et 2024-2030)",
        producer="ANCT",
        url="https://github.com/anct-carto/ci-ville2",
        version="CV 2015-2023 ; CN 2024-2030",
        downloads=(
            Download(_ANCT_CIVILLE + "geom_cv_ctr.json", "ci-ville/geom_cv_ctr.json"),
            Download(_ANCT_CIVILLE2 + "geom_cv_ctr.json", "ci-ville2/geom_cv_ctr.json"),
        ),
        mirror_paths=("funding/ci-ville/geom_cv_ctr.json", "funding/ci-ville2/geom_cv_ctr.json"),
        required=False,
    ),
    Source(
        name="cites_educatives",
        title="Cités éducatives",
        producer="ANCT",
        url="https://github.com/anct-carto/superposeur-anct",
        version="208 cités (sept. 2024)",
        downloads=(
            Download(
                "https://raw.githubusercontent.com/anct-carto/superposeur-anct/"
                "949f7e581185229a3bef1962d8f81f5608757f0c/data/geom/geojsonV2/"
                "citeduc_geom.geojson",
                "citeduc_geom.geojson",
            ),
        ),
        mirror_paths=("cites_educatives/citeduc_geom.geojson",),
        required=False,
    ),
    Source(
        name="funding",
        title="Adultes-relais et postes FONJEP par contrat de ville",
        producer="ANCT (extraction Dauphin)",
        url="https://www.data.gouv.fr/fr/datasets/subventions-politique-de-la-ville/",
        version="2020-2025",
        downloads=tuple(
            Download(_ANCT_CIVILLE + n, "ci-ville/" + n) for n in _FUNDING_V1
        ) + tuple(Download(_ANCT_CIVILLE2 + n, "ci-ville2/" + n) for n in _FUNDING_V2),
        mirror_paths=tuple("funding/ci-ville/" + n for n in _FUNDING_V1)
        + tuple("funding/ci-ville2/" + n for n in _FUNDING_V2),
        required=False,
    ),
)


def registry() -> tuple[Source, ...]:
    """The default registry of sources."""
    return REGISTRY


def source_by_name(name: str, sources: Iterable[Source] | None = None) -> Source:
    """Source called ``name`` (``SourceError`` if unknown)."""
    pool = list(sources if sources is not None else REGISTRY)
    for s in pool:
        if s.name == name:
            return s
    known = ", ".join(s.name for s in pool)
    raise SourceError(f"Source inconnue : « {name} » (sources connues : {known}).")


def official_dir(cache_dir: Path, name: str) -> Path:
    """Cache folder of the official files of source ``name``."""
    return cache_dir / OFFICIAL / name


def mirror_cache_dir(cache_dir: Path) -> Path:
    """Cache folder holding the files copied from the mirror (mirror layout)."""
    return cache_dir / MIRROR


# ---------------------------------------------------------------------------------------------
# Results and manifest


@dataclass
class FileRecord:
    """One file placed in the cache."""

    path: str  # relative to the cache dir, POSIX separators
    size: int
    sha256: str
    origin: str

    def as_dict(self) -> dict:
        """Manifest entry."""
        return {"origin": self.origin, "path": self.path, "sha256": self.sha256,
                "size": self.size}


@dataclass
class FetchResult:
    """Outcome of fetching one source."""

    source: Source
    origin: str
    status: str  # "ok" | "cache" | "absent"
    files: list[FileRecord] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    message: str = ""

    def describe(self) -> str:
        """French one-liner for the command line."""
        where = "miroir" if self.origin == MIRROR else "source officielle"
        size = sum(f.size for f in self.files)
        if self.status == "absent":
            what = ", ".join(self.missing) or self.message
            return (f"{self.source.name} : absente ({where}, source facultative) — {what}")
        verb = "déjà en cache" if self.status == "cache" else "récupérée"
        extra = f" ; manquants : {', '.join(self.missing)}" if self.missing else ""
        return (f"{self.source.name} : {verb} depuis {where}, {len(self.files)} fichier(s), "
                f"{_human(size)}{extra}")


def _human(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} Mo"
    if n >= 1_000:
        return f"{n / 1_000:.0f} ko"
    return f"{n} o"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _record(cache_dir: Path, path: Path, origin: str) -> FileRecord:
    return FileRecord(
        path=path.relative_to(cache_dir).as_posix(),
        size=path.stat().st_size,
        sha256=sha256_file(path),
        origin=origin,
    )


def write_manifest(path: Path, results: list[FetchResult]) -> None:
    """Merge ``results`` into the manifest at ``path`` (sorted JSON, no timestamps).

    Sources not fetched this time keep their previous entry; the file is rewritten only when
    its content changes, atomically.
    """
    entries: dict[str, dict] = {}
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            entries = {e["name"]: e for e in old.get("sources", [])}
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceError(f"Manifeste illisible : {path} ({exc})") from exc
    for r in results:
        if r.status == "absent":
            continue
        s = r.source
        entries[s.name] = {
            "files": sorted((f.as_dict() for f in r.files), key=lambda d: d["path"]),
            "licence": s.licence,
            "name": s.name,
            "origin": r.origin,
            "producer": s.producer,
            "title": s.title,
            "url": s.url,
            "version": s.version,
        }
    doc = {
        "comment": "Sources des couches de référence (généré par « territoires data fetch »).",
        "sources": [entries[k] for k in sorted(entries)],
    }
    text = json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    _atomic_write_text(path, text)


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# Downloading


def download(
    url: str,
    dest: Path,
    *,
    session: requests.Session | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download ``url`` to ``dest`` atomically (temp file + ``os.replace``).

    Streams with a tqdm progress bar, retries connection errors, truncated bodies and HTTP
    5xx/429 with exponential backoff, checks the size against ``Content-Length``. A 404 (or
    any other 4xx) or exhausted retries raise :class:`SourceError` naming the URL; nothing is
    left at ``dest`` (nor a temp file) on failure.
    """
    sess = session or requests.Session()
    dest.parent.mkdir(parents=True, exist_ok=True)
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            _download_once(sess, url, dest, timeout=timeout, progress=progress)
            return dest
        except _Retryable as exc:
            last = str(exc)
        except requests.RequestException as exc:
            last = f"erreur réseau : {exc}"
    raise SourceError(
        f"Téléchargement impossible de {url} après {retries + 1} essai(s) : {last}"
    )


class _Retryable(Exception):
    pass


def _download_once(
    sess: requests.Session, url: str, dest: Path, *, timeout: float, progress: bool
) -> None:
    with sess.get(url, stream=True, timeout=timeout,
                  headers={"User-Agent": USER_AGENT}) as resp:
        if resp.status_code == 404:
            raise SourceError(f"Fichier introuvable (HTTP 404) : {url}")
        if resp.status_code >= 500 or resp.status_code == 429:
            raise _Retryable(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise SourceError(f"Téléchargement refusé (HTTP {resp.status_code}) : {url}")
        expected = resp.headers.get("Content-Length")
        expected_n = int(expected) if expected and expected.isdigit() else None
        encoded = resp.headers.get("Content-Encoding", "identity") not in ("", "identity")
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        tmp_path = Path(tmp)
        try:
            received = 0
            with os.fdopen(fd, "wb") as fh, tqdm(
                total=expected_n, unit="B", unit_scale=True, desc=dest.name,
                disable=not progress, leave=False,
            ) as bar:
                try:
                    for chunk in resp.raw.stream(1 << 16, decode_content=True):
                        fh.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                except Exception as exc:  # urllib3 ProtocolError / IncompleteRead
                    raise _Retryable(
                        f"téléchargement tronqué ({received} octets reçus"
                        + (f" sur {expected_n}" if expected_n else "") + f") : {exc}"
                    ) from exc
            if expected_n is not None and not encoded and received != expected_n:
                raise _Retryable(
                    f"téléchargement tronqué : {received} octets reçus sur {expected_n} annoncés"
                )
            os.replace(tmp_path, dest)
        finally:
            tmp_path.unlink(missing_ok=True)


def _safe_member(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise SourceError(f"Archive refusée : chemin dangereux « {name} »")
    return p


def extract(archive: Path, kind: str, dest: Path, members: tuple[str, ...] = ()) -> list[Path]:
    """Extract ``members`` (all when empty) of a ``zip``/``tgz`` archive into ``dest``.

    Extraction goes to a temp folder beside ``dest`` which replaces ``dest`` only once every
    member is out, so a broken archive never leaves a half-extracted folder. Missing members
    raise :class:`SourceError` naming the archive and the member.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".extract"))
    try:
        out: list[Path] = []
        if kind == "zip":
            try:
                with zipfile.ZipFile(archive) as zf:
                    names = zf.namelist()
                    wanted = list(members) or [n for n in names if not n.endswith("/")]
                    for m in wanted:
                        if m not in names:
                            raise SourceError(
                                f"Fichier « {m} » absent de l'archive {archive.name}"
                            )
                        target = tmp / _safe_member(m)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(m) as src, target.open("wb") as dst:
                            shutil.copyfileobj(src, dst)
                        out.append(dest / _safe_member(m))
            except zipfile.BadZipFile as exc:
                raise SourceError(f"Archive zip illisible : {archive} ({exc})") from exc
        elif kind == "tgz":
            try:
                with tarfile.open(archive, "r:gz") as tf:
                    infos = {i.name: i for i in tf.getmembers() if i.isfile()}
                    wanted = list(members) or sorted(infos)
                    for m in wanted:
                        if m not in infos:
                            raise SourceError(
                                f"Fichier « {m} » absent de l'archive {archive.name}"
                            )
                        target = tmp / _safe_member(m)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        src = tf.extractfile(infos[m])
                        assert src is not None
                        with src, target.open("wb") as dst:
                            shutil.copyfileobj(src, dst)
                        out.append(dest / _safe_member(m))
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise SourceError(f"Archive tgz illisible : {archive} ({exc})") from exc
        else:
            raise SourceError(f"Type d'archive inconnu « {kind} » pour {archive}")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        return out
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _extract_dir(cache_dir: Path, source: Source, d: Download) -> Path:
    return official_dir(cache_dir, source.name) / "extract"


def official_files(cache_dir: Path, source: Source) -> list[Path]:
    """Paths the official fetch of ``source`` produces (extracted members for archives)."""
    base = official_dir(cache_dir, source.name)
    out: list[Path] = []
    for d in source.downloads:
        if d.archive:
            out.extend(_extract_dir(cache_dir, source, d) / m for m in d.members)
        else:
            out.append(base / d.filename)
    return out


def _fetch_official(
    cache_dir: Path, source: Source, *, force: bool, progress: bool, session: requests.Session,
    retries: int, backoff: float, sleep: Callable[[float], None],
) -> FetchResult:
    base = official_dir(cache_dir, source.name)
    records: list[FileRecord] = []
    fetched_any = False
    if not source.downloads:
        return FetchResult(source, OFFICIAL, "absent",
                           message="pas de fichier officiel (copie du miroir seulement)")
    for d in source.downloads:
        target = base / d.filename
        produced = (
            [_extract_dir(cache_dir, source, d) / m for m in d.members]
            if d.archive else [target]
        )
        if force or not all(p.exists() for p in produced) or (d.archive and not target.exists()):
            download(d.url, target, session=session, retries=retries, backoff=backoff,
                     progress=progress, sleep=sleep)
            if d.archive:
                extract(target, d.archive, _extract_dir(cache_dir, source, d), d.members)
            fetched_any = True
        records.append(_record(cache_dir, target, OFFICIAL))
        if d.archive:
            records.extend(_record(cache_dir, p, OFFICIAL) for p in produced)
    return FetchResult(source, OFFICIAL, "ok" if fetched_any else "cache", records)


def _is_pattern(rel: str) -> bool:
    return any(ch in rel for ch in "*?[")


def expand_mirror_paths(base: Path, patterns: Iterable[str]) -> tuple[list[str], list[str]]:
    """Relative paths under ``base`` matching ``patterns`` (a plain path, or a glob such as
    ``communes/…/communes-*.geojson``), sorted and without duplicates, and the patterns that
    matched no file."""
    found: list[str] = []
    missing: list[str] = []
    for rel in patterns:
        if _is_pattern(rel):
            hits = sorted(p.relative_to(base).as_posix() for p in base.glob(rel) if p.is_file())
        else:
            hits = [rel] if (base / rel).is_file() else []
        if not hits:
            missing.append(rel)
        found.extend(h for h in hits if h not in found)
    return found, missing


def _fetch_mirror(cache_dir: Path, mirror: Path, source: Source, *, force: bool) -> FetchResult:
    records: list[FileRecord] = []
    copied = False
    present, missing = expand_mirror_paths(mirror, source.mirror_paths)
    for rel in present:
        src = mirror / rel
        dst = mirror_cache_dir(cache_dir) / rel
        if force or not dst.exists() or dst.stat().st_size != src.stat().st_size:
            dst.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
            os.close(fd)
            try:
                shutil.copyfile(src, tmp)
                os.replace(tmp, dst)
            finally:
                Path(tmp).unlink(missing_ok=True)
            copied = True
        records.append(_record(cache_dir, dst, MIRROR))
    if missing and source.required and not (source.mirror_any and records):
        raise SourceError(
            f"Source obligatoire « {source.name} » : fichier(s) absent(s) du miroir {mirror} : "
            + ", ".join(missing)
        )
    if not records:
        return FetchResult(source, MIRROR, "absent", [], missing)
    return FetchResult(source, MIRROR, "ok" if copied else "cache", records, missing)


def fetch_all(
    cache_dir: Path,
    mirror: Path | None,
    only: list[str] | None = None,
    force: bool = False,
    progress: bool = True,
    manifest_path: Path | None = None,
    *,
    sources: Iterable[Source] | None = None,
    session: requests.Session | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[FetchResult]:
    """Fetch every source (or those named in ``only``) into ``cache_dir``.

    With ``mirror`` the files are copied from the offline mirror, else downloaded from their
    producers. Already cached files are kept unless ``force``. A required source that cannot
    be fetched raises :class:`SourceError`; an optional one is reported as absent. When
    ``manifest_path`` is given the manifest is updated (see :func:`write_manifest`).
    ``sources``/``session``/``retries``/``backoff``/``sleep`` are injectable for tests.
    """
    pool = list(sources if sources is not None else REGISTRY)
    selected = [source_by_name(n, pool) for n in only] if only else pool
    if mirror is not None and not mirror.is_dir():
        raise SourceError(f"Dossier miroir introuvable : {mirror}")
    sess = session or requests.Session()
    results: list[FetchResult] = []
    for source in selected:
        if mirror is not None:
            results.append(_fetch_mirror(cache_dir, mirror, source, force=force))
            continue
        try:
            results.append(_fetch_official(
                cache_dir, source, force=force, progress=progress, session=sess,
                retries=retries, backoff=backoff, sleep=sleep,
            ))
        except SourceError as exc:
            if source.required:
                raise
            results.append(FetchResult(source, OFFICIAL, "absent", message=str(exc)))
    if manifest_path is not None:
        write_manifest(manifest_path, results)
    return results


def with_base_url(base: str, sources: Iterable[Source] | None = None) -> tuple[Source, ...]:
    """Copy of the registry whose downloads point to ``<base>/<source name>/<filename>``
    (tests serve fixture files from a local HTTP server this way)."""
    out = []
    for s in sources if sources is not None else REGISTRY:
        downloads = tuple(
            Download(f"{base.rstrip('/')}/{s.name}/{d.filename}", d.filename, d.archive,
                     d.members)
            for d in s.downloads
        )
        out.append(replace(s, downloads=downloads))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Locating fetched files (used by build)


@dataclass(frozen=True)
class Located:
    """Where the cached files of one source are, and in which format."""

    source: Source
    origin: str  # "official" | "mirror"
    paths: dict[str, Path]  # key (official member/filename or mirror rel path) -> path


def locate(cache_dir: Path, name: str, sources: Iterable[Source] | None = None) -> Located | None:
    """Cached files of source ``name``: the official ones when all present, else the mirror
    copies that exist, else None."""
    source = source_by_name(name, sources)
    off = official_files(cache_dir, source)
    if off and all(p.exists() for p in off):
        keys = [m for d in source.downloads for m in (d.members if d.archive else (d.filename,))]
        return Located(source, OFFICIAL, dict(zip(keys, off, strict=True)))
    base = mirror_cache_dir(cache_dir)
    found, _ = expand_mirror_paths(base, source.mirror_paths) if base.is_dir() else ([], [])
    present = {rel: base / rel for rel in found}
    if present:
        return Located(source, MIRROR, present)
    return None
