"""Tests of territoires.pipeline.sources: real downloads from a local HTTP server, mirror copies,
archives, manifest."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from territoires.errors import SourceError
from territoires.pipeline import sources

FIXTURES = Path(__file__).parent / "fixtures" / "raw"
MIRROR = FIXTURES / "mirror"
OFFICIAL = FIXTURES / "official"
REPO = Path(__file__).resolve().parents[1]


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves ``directory``; ``/truncated/…`` lies about its length, ``/flaky/…`` answers 500
    the first ``flaky_failures`` times."""

    flaky_left: ClassVar[dict[str, int]] = {}
    hits: ClassVar[dict[str, int]] = {}

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        type(self).hits[self.path] = type(self).hits.get(self.path, 0) + 1
        if self.path.startswith("/truncated/"):
            body = b"0123456789" * 100
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) * 3))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/flaky/"):
            left = type(self).flaky_left.get(self.path, 1)
            if left > 0:
                type(self).flaky_left[self.path] = left - 1
                self.send_error(500, "boom")
                return
            self.path = self.path[len("/flaky"):]
        super().do_GET()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, served folder) of a local HTTP server on an ephemeral port."""
    root = tmp_path / "www"
    root.mkdir()
    _Handler.flaky_left = {}
    _Handler.hits = {}

    def handler(*args: object, **kwargs: object) -> _Handler:
        return _Handler(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _no_sleep(_: float) -> None:
    pass


def test_download_success_is_atomic_and_complete(served: tuple[str, Path], tmp_path: Path):
    base, root = served
    payload = b"code_qp;pop\nQN03307M;5200\n" * 50
    (root / "f.csv").write_bytes(payload)
    dest = tmp_path / "cache" / "f.csv"
    sources.download(f"{base}/f.csv", dest, progress=False, sleep=_no_sleep)
    assert dest.read_bytes() == payload
    assert sources.sha256_file(dest) == hashlib.sha256(payload).hexdigest()
    assert [p.name for p in dest.parent.iterdir()] == ["f.csv"]  # no temp file left


def test_truncated_download_is_refused_and_leaves_nothing(served: tuple[str, Path],
                                                          tmp_path: Path):
    base, _ = served
    dest = tmp_path / "cache" / "t.bin"
    with pytest.raises(SourceError, match="tronqué") as exc:
        sources.download(f"{base}/truncated/t.bin", dest, retries=1, progress=False,
                         sleep=_no_sleep)
    assert f"{base}/truncated/t.bin" in str(exc.value)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []
    assert _Handler.hits["/truncated/t.bin"] == 2  # retried once


def test_404_names_the_url_and_is_not_retried(served: tuple[str, Path], tmp_path: Path):
    base, _ = served
    dest = tmp_path / "cache" / "absent.json"
    with pytest.raises(SourceError, match="404") as exc:
        sources.download(f"{base}/absent.json", dest, retries=3, progress=False,
                         sleep=_no_sleep)
    assert f"{base}/absent.json" in str(exc.value)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert _Handler.hits["/absent.json"] == 1


def test_retry_after_500_succeeds_with_backoff(served: tuple[str, Path], tmp_path: Path):
    base, root = served
    (root / "ok.json").write_text('{"a": 1}', encoding="utf-8")
    waits: list[float] = []
    dest = tmp_path / "ok.json"
    sources.download(f"{base}/flaky/ok.json", dest, retries=2, backoff=0.5, progress=False,
                     sleep=waits.append)
    assert json.loads(dest.read_text(encoding="utf-8")) == {"a": 1}
    assert _Handler.hits["/flaky/ok.json"] == 2
    assert waits == [0.5]


def test_500_forever_gives_up(served: tuple[str, Path], tmp_path: Path):
    base, _ = served
    _Handler.flaky_left["/flaky/x.json"] = 10
    with pytest.raises(SourceError, match="HTTP 500"):
        sources.download(f"{base}/flaky/x.json", tmp_path / "x.json", retries=2,
                         progress=False, sleep=_no_sleep)
    assert _Handler.hits["/flaky/x.json"] == 3
    assert not (tmp_path / "x.json").exists()


def _serve_official(root: Path) -> None:
    """Lay out the official fixtures as the registry's downloads (zip, tgz, plain files)."""
    qpv = root / "qpv"
    qpv.mkdir(parents=True)
    with zipfile.ZipFile(qpv / "qpv2024.zip", "w") as zf:
        zf.write(OFFICIAL / "qpv" / "QP2024_France_Hexagonale_Outre_Mer_WGS84.geojson",
                 sources.QPV_ZIP_MEMBER)
        zf.writestr("LISEZMOI.txt", "notice")
    cog = root / "cog"
    cog.mkdir()
    with tarfile.open(cog / "decoupage-administratif-6.0.0.tgz", "w:gz") as tf:
        for n in ("communes", "epci", "departements", "regions"):
            tf.add(MIRROR / "communes" / "cog2026_etalab" / f"{n}.json",
                   arcname=f"package/data/{n}.json")
        info = tarfile.TarInfo("package/package.json")
        data = b'{"name": "@etalab/decoupage-administratif"}'
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    shutil.copytree(OFFICIAL / "qpv_population", root / "qpv_population")
    shutil.copytree(OFFICIAL / "communes_contours", root / "communes_contours")
    contours = MIRROR / "communes" / "contours_2018_gregoiredavid"
    (root / "admin_contours").mkdir()
    for n in ("departements", "regions"):
        shutil.copy(contours / f"{n}-version-simplifiee.geojson", root / "admin_contours")
    (root / "contrats_ville" / "ci-ville").mkdir(parents=True)
    (root / "contrats_ville" / "ci-ville2").mkdir(parents=True)
    for gen in ("ci-ville", "ci-ville2"):
        shutil.copy(MIRROR / "funding" / gen / "geom_cv_ctr.json",
                    root / "contrats_ville" / gen)
    (root / "cites_educatives").mkdir()
    shutil.copy(MIRROR / "cites_educatives" / "citeduc_geom.geojson", root / "cites_educatives")
    # "funding" is deliberately not served: optional source answering 404.


def test_fetch_all_official_downloads_extracts_and_records(served: tuple[str, Path],
                                                           tmp_path: Path):
    base, root = served
    _serve_official(root)
    registry = sources.with_base_url(base)
    cache = tmp_path / "cache"
    manifest = tmp_path / "sources.json"
    results = sources.fetch_all(cache, None, progress=False, manifest_path=manifest,
                                sources=registry, sleep=_no_sleep)
    by_name = {r.source.name: r for r in results}
    assert by_name["funding"].status == "absent"
    assert "absente" in by_name["funding"].describe()
    assert by_name["qpv"].status == "ok" and "récupérée" in by_name["qpv"].describe()
    # archives extracted under official/<source>/
    qpv_file = cache / "official" / "qpv" / "extract" / sources.QPV_ZIP_MEMBER
    assert qpv_file.exists()
    assert not (cache / "official" / "qpv" / "extract" / "LISEZMOI.txt").exists()
    cog_file = cache / "official" / "cog" / "extract" / "package" / "data" / "epci.json"
    assert json.loads(cog_file.read_text(encoding="utf-8"))[0]["code"] == "243300316"
    found = sources.locate(cache, "qpv", registry)
    assert found is not None and found.origin == "official"
    # manifest: sha256 and size of each file, origin official, sorted, no funding entry
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    names = [s["name"] for s in doc["sources"]]
    assert names == sorted(names) and "funding" not in names
    pop = next(s for s in doc["sources"] if s["name"] == "qpv_population")
    (f,) = pop["files"]
    local = cache / f["path"]
    assert f["origin"] == "official"
    assert f["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest()
    assert f["size"] == local.stat().st_size
    assert pop["licence"] == "Licence Ouverte 2.0"
    # second run: everything comes from the cache, no new request, identical manifest
    before = manifest.read_bytes()
    hits = dict(_Handler.hits)
    again = sources.fetch_all(cache, None, progress=False, manifest_path=manifest,
                              sources=registry, sleep=_no_sleep)
    assert {r.source.name: r.status for r in again}["qpv"] == "cache"
    assert manifest.read_bytes() == before
    assert {k: v for k, v in _Handler.hits.items() if "funding" not in k} == {
        k: v for k, v in hits.items() if "funding" not in k}


def test_fetch_required_404_is_an_error(served: tuple[str, Path], tmp_path: Path):
    base, _ = served
    registry = sources.with_base_url(base)
    with pytest.raises(SourceError, match="404") as exc:
        sources.fetch_all(tmp_path / "cache", None, only=["cog"], progress=False,
                          sources=registry, sleep=_no_sleep)
    assert f"{base}/cog/decoupage-administratif-6.0.0.tgz" in str(exc.value)
    assert not any((tmp_path / "cache").rglob("*.tgz"))


def test_broken_archive_leaves_no_half_extraction(tmp_path: Path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    dest = tmp_path / "extract"
    with pytest.raises(SourceError, match="illisible"):
        sources.extract(bad, "zip", dest, ("a.geojson",))
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.zip"]


def test_zip_missing_member_is_named(tmp_path: Path):
    z = tmp_path / "q.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("other.txt", "x")
    with pytest.raises(SourceError, match="GEOJSON/QP2024"):
        sources.extract(z, "zip", tmp_path / "x", (sources.QPV_ZIP_MEMBER,))


def test_fetch_from_mirror_keeps_layout_and_reports_missing(tmp_path: Path):
    cache = tmp_path / "cache"
    manifest = tmp_path / "sources.json"
    results = sources.fetch_all(cache, MIRROR, progress=False, manifest_path=manifest)
    by_name = {r.source.name: r for r in results}
    assert (cache / "mirror" / "qpv" / "qpv2024_code_list_derived.csv").exists()
    assert by_name["qpv_population"].status == "absent"
    assert "qpv/pop_QPV24.csv" in by_name["qpv_population"].describe()
    # the commune contours are every département file present in the folder
    contours = by_name["communes_contours"]
    assert contours.status == "ok" and sorted(Path(f.path).name for f in contours.files) == [
        "communes-2A-corse-du-sud.geojson", "communes-33-gironde.geojson"]
    # optional source partly present: copied, missing files reported
    admin = by_name["admin_contours"]
    assert admin.status == "ok" and len(admin.files) == 2
    assert "departements-avec-outre-mer.geojson" in admin.describe()
    # the mirror-only copy of the QPV population is fetched from the mirror
    assert by_name["qpv_population_copy"].status == "ok"
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    files = [f for s in doc["sources"] for f in s["files"]]
    assert files and all(f["origin"] == "mirror" for f in files)
    assert all(f["path"].startswith("mirror/") for f in files)
    # re-running on the mirror gives no diff (even with --force)
    before = manifest.read_bytes()
    sources.fetch_all(cache, MIRROR, progress=False, manifest_path=manifest, force=True)
    assert manifest.read_bytes() == before
    # the manifest keeps entries of sources not fetched this time
    sources.fetch_all(cache, MIRROR, only=["qpv"], progress=False, manifest_path=manifest)
    assert manifest.read_bytes() == before


def test_mirror_folder_is_read_not_a_fixed_list(tmp_path: Path):
    mirror = tmp_path / "mirror"
    shutil.copytree(MIRROR, mirror)
    folder = mirror / "communes" / "contours_2018_gregoiredavid"
    shutil.copy(folder / "communes-2A-corse-du-sud.geojson",
                folder / "communes-2B-haute-corse.geojson")
    (folder / "communes-33-gironde.geojson").unlink()
    cache = tmp_path / "cache"
    (result,) = sources.fetch_all(cache, mirror, only=["communes_contours"], progress=False)
    assert sorted(Path(f.path).name for f in result.files) == [
        "communes-2A-corse-du-sud.geojson", "communes-2B-haute-corse.geojson"]
    found = sources.locate(cache, "communes_contours")
    assert found is not None and sorted(Path(k).name for k in found.paths) == [
        "communes-2A-corse-du-sud.geojson", "communes-2B-haute-corse.geojson"]


def test_qpv_needs_one_of_its_mirror_forms(tmp_path: Path):
    mirror = tmp_path / "mirror"
    shutil.copytree(MIRROR, mirror)
    (mirror / "qpv" / "qpv2024_complete_1584_derived.geojson").unlink()
    (result,) = sources.fetch_all(tmp_path / "cache", mirror, only=["qpv"], progress=False)
    assert result.status == "ok" and "qpv2024_complete_1584_derived" in result.describe()
    for p in (mirror / "qpv").iterdir():
        p.unlink()
    with pytest.raises(SourceError, match="« qpv »"):
        sources.fetch_all(tmp_path / "cache2", mirror, only=["qpv"], progress=False)


def test_mirror_missing_required_file_is_an_error(tmp_path: Path):
    mirror = tmp_path / "mirror"
    shutil.copytree(MIRROR, mirror)
    (mirror / "communes" / "cog2026_etalab" / "epci.json").unlink()
    with pytest.raises(SourceError, match=r"epci\.json"):
        sources.fetch_all(tmp_path / "cache", mirror, only=["cog"], progress=False)
    with pytest.raises(SourceError, match="introuvable"):
        sources.fetch_all(tmp_path / "cache", tmp_path / "nope", progress=False)


def test_unknown_source_is_named():
    with pytest.raises(SourceError, match="« nope »"):
        sources.fetch_all(Path("/nonexistent"), None, only=["nope"], progress=False)


def test_registry_is_complete():
    names = [s.name for s in sources.registry()]
    assert len(names) == len(set(names))
    assert {"qpv", "qpv_population", "cog", "communes_contours", "admin_contours",
            "contrats_ville", "cites_educatives", "funding"} <= set(names)
    for s in sources.registry():
        assert s.licence == "Licence Ouverte 2.0"
        # the third-party copy of the QPV population is an offline fallback only
        assert s.downloads or s.name == "qpv_population_copy"
        assert all(d.url.startswith("https://") for d in s.downloads)
        assert s.mirror_paths
    assert not sources.source_by_name("qpv_population").required


def test_committed_manifest_is_sorted_and_matches_registry():
    path = REPO / "data" / "sources.json"
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert text == json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    registry = {s.name: s for s in sources.registry()}
    for entry in doc["sources"]:
        s = registry[entry["name"]]
        assert entry["url"] == s.url and entry["version"] == s.version
        for f in entry["files"]:
            assert len(f["sha256"]) == 64 and f["size"] > 0
            assert f["origin"] in ("official", "mirror")
