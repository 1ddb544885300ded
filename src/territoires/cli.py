"""Command-line interface: ``territoires data …`` and ``territoires catalogue …``.

Every command prints French messages; errors of the :class:`TerritoiresError` hierarchy are
printed without a traceback and give exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from territoires import config
from territoires.errors import TerritoiresError


def _data_fetch(args: argparse.Namespace) -> int:
    from territoires.pipeline import sources

    mirror = Path(args.mirror).resolve() if args.mirror else config.mirror_dir()
    results = sources.fetch_all(
        config.cache_dir(),
        mirror=mirror,
        only=args.only or None,
        force=args.force,
        progress=not args.quiet,
        manifest_path=config.sources_manifest_path(),
    )
    for r in results:
        print(r.describe())
    return 0


def _data_build(args: argparse.Namespace) -> int:
    from territoires.pipeline import build, sources

    geo = Path(args.geo).resolve() if args.geo else config.geo_dir()
    mirror = config.mirror_dir()
    if mirror is not None:
        # offline: the cache follows the mirror (new or changed files copied, others kept)
        for r in sources.fetch_all(config.cache_dir(), mirror=mirror, progress=False,
                                   manifest_path=config.sources_manifest_path()):
            print(r.describe())
    report = build.build_all(config.cache_dir(), geo)
    print(report.describe())
    _prune_layer_files()
    return 0


def _prune_layer_files() -> None:
    """After a build: the map files served from the older layers are removed, and the
    map documents that name them."""
    from territoires.app import layer_files, map_documents

    removed = layer_files.prune()
    documents = map_documents.prune()
    if removed or documents:
        print(f"{removed} fichier(s) de couches et {documents} carte(s) servis par "
              f"l'application retirés ({layer_files.layers_dir()}, "
              f"{map_documents.maps_dir()}) : redémarrez les serveurs en cours.")


def _data_status(args: argparse.Namespace) -> int:
    from territoires.pipeline import build

    print(build.status_text(config.geo_dir(), config.cache_dir()))
    return 0


def _catalogue_seed(args: argparse.Namespace) -> int:
    from territoires.catalogue import catalogue_ops

    print(catalogue_ops.seed(Path(args.seeds) if args.seeds else config.seeds_dir(),
                             args.db or config.database_url()))
    return 0


def _catalogue_import(args: argparse.Namespace) -> int:
    from territoires.catalogue import catalogue_ops

    print(catalogue_ops.import_file(Path(args.file), args.db or config.database_url(),
                                    dry_run=args.dry_run))
    return 0


def _catalogue_export(args: argparse.Namespace) -> int:
    from territoires.catalogue import catalogue_ops

    print(catalogue_ops.export_file(Path(args.file), args.db or config.database_url(),
                                    fmt=args.format, include_private=args.with_emails,
                                    include_national_funding=args.with_national_funding))
    return 0


def _catalogue_template(args: argparse.Namespace) -> int:
    from territoires.catalogue import export

    export.write_template(Path(args.file))
    print(f"Modèle vide écrit : {args.file}")
    return 0


def _catalogue_load_funding(args: argparse.Namespace) -> int:
    from territoires.catalogue import catalogue_ops

    mirror = Path(args.mirror).resolve() if args.mirror else config.mirror_dir()
    print(catalogue_ops.load_funding(args.db or config.database_url(), mirror=mirror))
    return 0


def _setup(args: argparse.Namespace) -> int:
    """Fetch, build, create the database, load the seeds and national funding (idempotent)."""
    from territoires.catalogue import catalogue_ops
    from territoires.pipeline import build, layers, sources

    geo = config.geo_dir()
    try:
        layers.read_status(geo)
        built = True
    except TerritoiresError:
        built = False
    if not built or args.rebuild:
        for r in sources.fetch_all(config.cache_dir(), mirror=config.mirror_dir(),
                                   progress=not args.quiet,
                                   manifest_path=config.sources_manifest_path()):
            print(r.describe())
        print(build.build_all(config.cache_dir(), geo).describe())
        _prune_layer_files()
    else:
        print(f"Couches déjà construites dans {geo} (--rebuild pour reconstruire).")
    url = config.database_url()
    print(catalogue_ops.seed(config.seeds_dir(), url))
    print(catalogue_ops.load_funding(url, mirror=config.mirror_dir(), only_if_empty=True))
    if not args.no_assets:
        from territoires.app.assets import AssetError

        try:
            _assets_fetch(argparse.Namespace(force=False))
        except AssetError as exc:  # the maps then load Leaflet from its CDN
            print(f"Attention : {exc} Les cartes chargeront Leaflet depuis son CDN.",
                  file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Warm the caches, then run the Streamlit server (see territoires.app.serve)."""
    from territoires.app import serve

    extra = list(args.streamlit_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    return serve.serve(extra, warm_first=not args.no_warm)


def _users_store(args: argparse.Namespace):  # -> Store
    from territoires.catalogue.storage import Store

    store = Store(args.db or config.database_url())
    store.create_or_upgrade()
    return store


def _users_grant(args: argparse.Namespace) -> int:
    from territoires.catalogue import auth

    store = _users_store(args)
    try:
        print(auth.grant(store, auth.CLI_USER, args.email, args.role))
    finally:
        store.dispose()
    return 0


def _users_revoke(args: argparse.Namespace) -> int:
    from territoires.catalogue import auth

    store = _users_store(args)
    try:
        print(auth.revoke(store, auth.CLI_USER, args.email))
    finally:
        store.dispose()
    return 0


def _users_list(args: argparse.Namespace) -> int:
    from territoires.catalogue import auth

    store = _users_store(args)
    try:
        users = auth.list_users(store, auth.CLI_USER)
    finally:
        store.dispose()
    if not users:
        print("Aucun rôle enregistré : « territoires users grant EMAIL admin » nomme le premier "
              "administrateur.")
    for u in users:
        when = u["granted_at"].strftime("%d/%m/%Y %H:%M") if u["granted_at"] else "?"
        print(f"{u['key']}\t{u['role']}\tdonné par {u['granted_by']} le {when}")
    return 0


def _assets_fetch(args: argparse.Namespace) -> int:
    from territoires.app import assets

    for line in assets.fetch(force=args.force):
        print(line)
    return 0


def _assets_verify(args: argparse.Namespace) -> int:
    from territoires.app import assets

    problems = assets.verify()
    for line in problems or ["Bibliothèques de la carte présentes et intactes."]:
        print(line)
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``territoires`` command."""
    p = argparse.ArgumentParser(
        prog="territoires", description="Territoires : données et catalogue"
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("setup", help="tout préparer : couches, base, fiches, financements")
    s.add_argument("--rebuild", action="store_true", help="reconstruire les couches")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--no-assets", action="store_true",
                   help="sans récupérer les bibliothèques de la carte (npm)")
    s.set_defaults(func=_setup)

    sv = sub.add_parser("serve", help="lancer le tableau de bord (données chargées avant "
                                      "d'accepter les visites)")
    sv.add_argument("--no-warm", action="store_true",
                    help="sans précharger (comme streamlit run app.py)")
    sv.add_argument("streamlit_args", nargs=argparse.REMAINDER,
                    help="options passées à streamlit run, ex. --server.port 8501")
    sv.set_defaults(func=_serve)

    web = sub.add_parser("assets", help="bibliothèques de la carte servies par l'application")
    wsub = web.add_subparsers(dest="assets_command", required=True)
    wf = wsub.add_parser("fetch", help="récupérer Leaflet et ses extensions (registre npm)")
    wf.add_argument("--force", action="store_true", help="récupérer même si déjà présentes")
    wf.set_defaults(func=_assets_fetch)
    wv = wsub.add_parser("verify", help="vérifier les empreintes des fichiers récupérés")
    wv.set_defaults(func=_assets_verify)

    data = sub.add_parser("data", help="couches territoriales de référence")
    dsub = data.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="télécharger les sources officielles (ou lire le miroir)")
    f.add_argument("--mirror", help="dossier miroir hors ligne (défaut : $TERRITOIRES_MIRROR)")
    f.add_argument("--only", nargs="*", help="noms des sources à récupérer")
    f.add_argument("--force", action="store_true", help="récupérer même si déjà en cache")
    f.add_argument("--quiet", action="store_true", help="sans barre de progression")
    f.set_defaults(func=_data_fetch)
    b = dsub.add_parser("build", help="construire les couches dans geo/")
    b.add_argument("--geo", help="dossier de sortie (défaut : geo/)")
    b.set_defaults(func=_data_build)
    st = dsub.add_parser("status", help="état des couches construites")
    st.set_defaults(func=_data_status)

    cat = sub.add_parser("catalogue", help="catalogue des initiatives et financements")
    csub = cat.add_subparsers(dest="catalogue_command", required=True)
    for name, func, helptext in [
        ("seed", _catalogue_seed, "charger les fiches de data/initiatives"),
        ("import", _catalogue_import, "importer un classeur XLSX ou un dossier/zip CSV"),
        ("export", _catalogue_export, "exporter le catalogue"),
        ("template", _catalogue_template, "écrire le modèle vide (XLSX)"),
        ("load-funding", _catalogue_load_funding, "charger adultes-relais et FONJEP"),
    ]:
        c = csub.add_parser(name, help=helptext)
        c.set_defaults(func=func)
        if name != "template":
            c.add_argument("--db", help="URL SQLAlchemy (défaut : $TERRITOIRES_DATABASE_URL)")
        if name in ("import", "export", "template"):
            c.add_argument("file", help="fichier")
        if name == "seed":
            c.add_argument("--seeds", help="dossier des fiches (défaut : data/initiatives)")
        if name == "import":
            c.add_argument("--dry-run", action="store_true", help="vérifier sans écrire")
        if name == "export":
            c.add_argument("--format", choices=["csv", "xlsx", "geojson", "gpkg"],
                           help="format (défaut : d'après l'extension)")
            c.add_argument("--with-emails", action="store_true",
                           help="inclure les e-mails de contact (privés)")
            c.add_argument("--with-national-funding", action="store_true",
                           help="inclure les lignes nationales (adultes-relais, FONJEP)")
        if name == "load-funding":
            c.add_argument("--mirror", help="dossier miroir (défaut : $TERRITOIRES_MIRROR)")
    users = sub.add_parser("users", help="rôles des personnes connectées (contribution)")
    usub = users.add_subparsers(dest="users_command", required=True)
    g = usub.add_parser("grant", help="donner un rôle : contributeur, moderateur ou admin")
    g.add_argument("email", help="e-mail de la personne (ou sub:IDENTIFIANT)")
    g.add_argument("role", choices=["contributeur", "moderateur", "admin"])
    g.set_defaults(func=_users_grant)
    r = usub.add_parser("revoke", help="retirer le rôle enregistré")
    r.add_argument("email")
    r.set_defaults(func=_users_revoke)
    ls = usub.add_parser("list", help="lister les rôles enregistrés")
    ls.set_defaults(func=_users_list)
    for c in (g, r, ls):
        c.add_argument("--db", help="URL SQLAlchemy (défaut : $TERRITOIRES_DATABASE_URL)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``territoires`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TerritoiresError as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
