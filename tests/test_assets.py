"""Web assets served by the app: integrity check, unpacking, manifest, folium links."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import folium
import pytest
from folium.plugins import MarkerCluster

from territoires.app import assets
from territoires.app.assets import AssetError, NpmPackage


def _tarball(path: Path, files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _package(tmp_path: Path) -> tuple[NpmPackage, Path]:
    tgz = tmp_path / "demo-1.0.0.tgz"
    data = _tarball(tgz, {"dist/demo.js": b"var demo = 1;", "dist/images/a.png": b"png",
                          "README.md": b"not copied"})
    return NpmPackage("demo", "1.0.0", assets.sri_sha512(data), ("dist/demo.js",
                                                                  "dist/images")), tgz


def test_unpack_copies_only_the_listed_paths(tmp_path: Path) -> None:
    package, tgz = _package(tmp_path)
    written = assets.unpack(package, tgz, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "dist/demo.js", "dist/images/a.png"]


def test_unpack_without_extractall_writes_only_regular_files_inside(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unpacking works on every Python 3.11 (``extractall(filter=...)`` is missing before
    3.11.4: the README's setup failed on Debian's 3.11.2) and writes nothing but the listed
    regular files: no link, no path leaving the target."""
    def no_extractall(self: tarfile.TarFile, *args: object, **kwargs: object) -> None:
        raise TypeError("TarFile.extractall() got an unexpected keyword argument 'filter'")

    monkeypatch.setattr(tarfile.TarFile, "extractall", no_extractall)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in {"dist/demo.js": b"var demo = 1;",
                           "dist/../../evil.js": b"outside"}.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("package/dist/link.js")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    tgz = tmp_path / "odd.tgz"
    tgz.write_bytes(buf.getvalue())
    package = NpmPackage("odd", "1.0.0", assets.sri_sha512(buf.getvalue()), ("dist",))
    written = assets.unpack(package, tgz, tmp_path / "out" / "odd")
    assert [p.relative_to(tmp_path / "out" / "odd").as_posix() for p in written] == [
        "dist/demo.js"]
    assert sorted(p.name for p in tmp_path.rglob("*.js")) == ["demo.js"]
    missing = NpmPackage("odd", "1.0.0", package.integrity, ("dist/absent.js",))
    with pytest.raises(AssetError, match="absent du paquet"):
        assets.unpack(missing, tgz, tmp_path / "out" / "missing")


def test_unpack_refuses_a_tarball_that_is_not_the_pinned_one(tmp_path: Path) -> None:
    package, tgz = _package(tmp_path)
    tgz.write_bytes(tgz.read_bytes() + b"\0")
    with pytest.raises(AssetError, match="empreinte inattendue"):
        assets.unpack(package, tgz, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fetch_writes_manifest_and_verify_sees_changes(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    package, tgz = _package(tmp_path)
    calls: list[str] = []

    def fake_pack(spec: str, dest: Path, timeout: float = 300) -> Path:
        calls.append(spec)
        target = dest / tgz.name
        target.write_bytes(tgz.read_bytes())
        return target

    monkeypatch.setattr(assets, "_npm_pack", fake_pack)
    static = tmp_path / "static"
    lines = assets.fetch([package], static=static)
    assert calls == ["demo@1.0.0"] and "2 fichiers vérifiés" in lines[0]
    assert assets.verify(static, [package]) == []
    assert "déjà présent" in assets.fetch([package], static=static)[0]
    assert calls == ["demo@1.0.0"]  # intact: not fetched again
    (static / "vendor" / "demo-1.0.0" / "dist" / "demo.js").write_text("altered")
    assert assets.verify(static, [package]) != []
    assets.fetch([package], static=static)
    assert calls == ["demo@1.0.0", "demo@1.0.0"]  # altered: fetched again
    assert assets.verify(static, [package]) == []


def test_pinned_packages_cover_every_cdn_file() -> None:
    names = {p.name: p for p in assets.PACKAGES}
    for url, (name, rel) in assets.CDN_FILES.items():
        assert name in names, url
        assert any(rel == p or rel.startswith(p + "/") for p in names[name].paths), url
    # what folium and MarkerCluster ask for today is known (a folium upgrade changing a
    # version shows up here): served by the app, or an icon-only library dropped
    links = (folium.Map.default_js + folium.Map.default_css + MarkerCluster.default_js
             + MarkerCluster.default_css)
    for name, url in links:
        assert url in assets.CDN_FILES or name in assets.ICON_ONLY, url


def _fake_static(tmp_path: Path) -> Path:
    static = tmp_path / "static"
    for url in assets.CDN_FILES:
        name, rel = assets.CDN_FILES[url]
        folder = next(p.folder for p in assets.PACKAGES if p.name == name)
        path = static / "vendor" / folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("/* copy */")
    return static


def test_localise_points_folium_at_the_app(tmp_path: Path) -> None:
    static = _fake_static(tmp_path)
    m = folium.Map()
    MarkerCluster().add_to(m)
    assets.localise(m, static=static, base_path="/territoires/")
    links = [u for e in assets.walk(m) for attr in ("default_js", "default_css")
             for _, u in getattr(e, attr, [])]
    assert "/territoires/app/static/vendor/leaflet-1.9.3/dist/leaflet.js" in links
    assert ("/territoires/app/static/vendor/leaflet.markercluster-1.1.0/dist/"
            "leaflet.markercluster.js") in links
    assert all(u.startswith("/territoires/app/static/") for u in links), links
    assert folium.Map.default_js[0][1].startswith("https://")  # the class is untouched


def test_localise_falls_back_to_the_cdn_when_absent(tmp_path: Path) -> None:
    m = folium.Map()
    assets.localise(m, static=tmp_path / "empty")
    js = dict(m.default_js)
    assert js["leaflet"] == "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js"
    assert "bootstrap" not in js  # icon-only libraries dropped all the same


def test_localise_keeps_icon_libraries_when_the_map_has_icons(tmp_path: Path) -> None:
    m = folium.Map()
    folium.Marker([45, 0], icon=folium.Icon(color="red")).add_to(m)
    assets.localise(m, static=tmp_path / "empty")
    assert "awesome_markers" in dict(m.default_js)


def test_allow_zoom_drops_user_scalable_no() -> None:
    m = folium.Map()
    assert "user-scalable=no" in m.get_root().render()
    m = assets.allow_zoom(folium.Map())
    m.render()
    header = m.get_root().header.render()
    assert "user-scalable=no" not in header
    assert 'name="viewport"' in header


def test_cli_assets_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from territoires import cli

    monkeypatch.setenv("TERRITOIRES_STATIC_DIR", str(tmp_path / "static"))
    assert cli.main(["assets", "verify"]) == 1  # nothing fetched there
    assert "absent ou modifié" in capsys.readouterr().out
    package, tgz = _package(tmp_path)
    monkeypatch.setattr(assets, "PACKAGES", (package,))
    monkeypatch.setattr(assets, "_npm_pack", lambda spec, dest, timeout=300: tgz)
    assert cli.main(["assets", "fetch"]) == 0
    assert cli.main(["assets", "verify"]) == 0
    assert "intactes" in capsys.readouterr().out


def test_localise_drops_jquery_unless_a_folium_popup_needs_it(tmp_path: Path) -> None:
    """jQuery is one more script loaded before the map draws; only folium's popups use it."""
    static = _fake_static(tmp_path)

    def scripts(m: folium.Map) -> list[str]:
        assets.localise(m, static=static)
        return [u for e in assets.walk(m) for _, u in getattr(e, "default_js", [])]

    plain = folium.Map()
    folium.CircleMarker([45, 0], radius=3, tooltip="x").add_to(plain)
    assert not any("jquery" in u for u in scripts(plain))
    with_popup = folium.Map()
    folium.CircleMarker([45, 0], radius=3, popup=folium.Popup("x")).add_to(with_popup)
    assert any("jquery" in u for u in scripts(with_popup))
