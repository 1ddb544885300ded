"""Static maps served as documents: written once by content, kept fresh, bounded, and their
iframe made of nothing but a file name, an escaped title and a height."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from territoires.app import map_documents
from territoires.app.map_documents import MapDocument


def test_a_document_is_written_once_under_the_hash_of_its_content(tmp_path: Path) -> None:
    doc = MapDocument.of("<!doctype html><p>carte</p>")
    assert doc.name == hashlib.sha256(doc.text.encode()).hexdigest() + ".html"
    url = map_documents.publish(doc, static=tmp_path, base_path="/territoires/")
    assert url == f"/territoires/app/static/maps/{doc.name}"
    path = tmp_path / "maps" / doc.name
    assert path.read_text(encoding="utf-8") == doc.text
    assert oct(path.stat().st_mode & 0o777) == "0o644"  # served like the other files
    os.utime(path, (1_000, 1_000))
    path.write_text("écrit par un autre processus", encoding="utf-8")  # same name: same bytes
    assert map_documents.publish(doc, static=tmp_path) == f"/app/static/maps/{doc.name}"
    assert path.read_text(encoding="utf-8") == "écrit par un autre processus"  # not rewritten
    assert time.time() - path.stat().st_mtime < 60  # its use recorded: kept by trim
    assert [p.name for p in (tmp_path / "maps").iterdir()] == [doc.name]  # no temporary left


def test_a_document_removed_meanwhile_is_written_again_at_its_next_use(tmp_path: Path) -> None:
    """Another process may have trimmed the folder: the page that names the file writes it."""
    doc = MapDocument.of("<p>carte</p>")
    map_documents.publish(doc, static=tmp_path)
    (tmp_path / "maps" / doc.name).unlink()
    map_documents.publish(doc, static=tmp_path)
    assert (tmp_path / "maps" / doc.name).read_text(encoding="utf-8") == doc.text


def test_a_recently_used_document_is_not_touched_again(tmp_path: Path) -> None:
    doc = MapDocument.of("<p>carte</p>")
    map_documents.publish(doc, static=tmp_path)
    path = tmp_path / "maps" / doc.name
    recent = time.time() - 60
    os.utime(path, (recent, recent))
    map_documents.publish(doc, static=tmp_path)
    assert path.stat().st_mtime == pytest.approx(recent)  # no write per page run


def test_trim_removes_the_documents_unused_the_longest(tmp_path: Path) -> None:
    now = time.time()
    docs = [MapDocument.of(f"<p>{'x' * 100} {i}</p>") for i in range(4)]
    for age, doc in zip((9_000, 8_000, 7_000, 10), docs, strict=True):
        map_documents.publish(doc, static=tmp_path)
        os.utime(tmp_path / "maps" / doc.name, (now - age, now - age))
    size = (tmp_path / "maps" / docs[0].name).stat().st_size
    assert map_documents.trim(tmp_path, max_bytes=2 * size, keep_seconds=3_600) == 2
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == sorted(
        d.name for d in docs[2:])
    # over the bound, but the rest was used within the hour: a page may be loading it
    assert map_documents.trim(tmp_path, max_bytes=0, keep_seconds=3_600) == 1
    assert [p.name for p in (tmp_path / "maps").iterdir()] == [docs[3].name]


def test_the_folder_is_trimmed_as_documents_are_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory and disk stay bounded whatever the number of views drawn."""
    monkeypatch.setattr(map_documents, "MAX_BYTES", 0)
    monkeypatch.setattr(map_documents, "KEEP_SECONDS", -1)
    monkeypatch.setattr(map_documents, "CHECK_EVERY", 4)
    monkeypatch.setattr(map_documents, "_writes", 0)
    for i in range(8):
        map_documents.publish(MapDocument.of(f"<p>{i}</p>"), static=tmp_path)
    assert len(list((tmp_path / "maps").iterdir())) == 0  # trimmed at the 8th write
    map_documents.publish(MapDocument.of("<p>9</p>"), static=tmp_path)
    assert len(list((tmp_path / "maps").iterdir())) == 1


def test_prune_removes_every_document(tmp_path: Path) -> None:
    assert map_documents.prune(tmp_path) == 0  # no folder yet
    for i in range(2):
        map_documents.publish(MapDocument.of(f"<p>{i}</p>"), static=tmp_path)
    (tmp_path / "maps" / "notes.txt").write_text("pas une carte", encoding="utf-8")
    assert map_documents.prune(tmp_path) == 2
    assert [p.name for p in (tmp_path / "maps").iterdir()] == ["notes.txt"]


def test_the_iframe_is_made_of_the_file_name_an_escaped_title_and_a_height() -> None:
    name = "ab" * 32 + ".html"
    tag = map_documents.iframe(f"/app/static/maps/{name}",
                               'Carte "<img src=x onerror=alert(1)>"', 430)
    assert tag.startswith(f'<iframe src="/app/static/maps/{name}" ')
    assert 'title="Carte &quot;&lt;img src=x onerror=alert(1)&gt;&quot;"' in tag
    assert "<img" not in tag and "height:430px" in tag
    assert 'class="territoires-carte"' in tag
    for url in ("/app/static/maps/x.html", f"javascript:alert(1)//{name}",
                f'/app/static/maps/{name}" onload="alert(1)'):
        with pytest.raises(ValueError, match="adresse de carte inattendue"):
            map_documents.iframe(url, "Carte", 430)
