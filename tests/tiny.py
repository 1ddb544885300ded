"""Tiny hand-made reference layers: a few squares with real-looking codes.

Gironde (Bordeaux Métropole: Bordeaux, Cenon, Lormont, Le Bouscat, Eysines), Pau, La Rochelle
and Saint-Denis (93). QN03309M spans Bordeaux and Cenon; QN03301I spans Le Bouscat and
Eysines; QN09301M has only a centroid (like QPV missing from the offline mirror).
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
from shapely.geometry import Point, box
from shapely.ops import unary_union

from territoires.pipeline.layers import CRS, Layers


def square(lon: float, lat: float, half: float = 0.01):
    """A square polygon of side ``2 * half`` degrees centred on (lon, lat)."""
    return box(lon - half, lat - half, lon + half, lat + half)


COMMUNES = [
    # code, nom, dep, reg, epci, population, lon, lat
    ("33063", "Bordeaux", "33", "75", "243300316", 267991, -0.58, 44.84),
    ("33119", "Cenon", "33", "75", "243300316", 27000, -0.56, 44.84),
    ("33249", "Lormont", "33", "75", "243300316", 24000, -0.54, 44.84),
    ("33069", "Le Bouscat", "33", "75", "243300316", 24500, -0.58, 44.86),
    ("33162", "Eysines", "33", "75", "243300316", 25000, -0.60, 44.86),
    ("64445", "Pau", "64", "75", "200067254", 76000, -0.37, 43.30),
    ("17300", "La Rochelle", "17", "75", "241700434", 79000, -1.15, 46.16),
    ("93066", "Saint-Denis", "93", "11", "200054781", 113000, 2.36, 48.94),
]

QPV = [
    # code, nom, communes, population, kind, lon, lat
    ("QN03307M", "Le Lac", ["33063"], 5200, "polygon", -0.585, 44.845),
    ("QN03309M", "Benauge", ["33063", "33119"], 4100, "polygon", -0.57, 44.84),
    ("QN03312M", "Palmer-Saraillère", ["33119"], 6000, "polygon", -0.555, 44.835),
    ("QN03317M", "Génicart Est", ["33249"], 3900, "polygon", -0.545, 44.845),
    ("QN03301I", "Champ de Course", ["33069", "33162"], None, "polygon", -0.59, 44.86),
    ("QN06403M", "Saragosse", ["64445"], 7000, "polygon", -0.375, 43.305),
    ("QN01701M", "Mireuil", ["17300"], 8000, "polygon", -1.155, 46.165),
    ("QN09301M", "Quartier Nord", ["93066"], None, "centroid", 2.36, 48.945),
]

EPCI = [
    ("243300316", "Bordeaux Métropole", "METRO", ["33"], ["75"]),
    ("200067254", "CA Pau Béarn Pyrénées", "CA", ["64"], ["75"]),
    ("241700434", "CA de La Rochelle", "CA", ["17"], ["75"]),
    ("200054781", "Métropole du Grand Paris", "MET69", ["93"], ["11"]),
]


def make_layers() -> Layers:
    """Build the tiny reference layers."""
    communes = gpd.GeoDataFrame(
        {
            "code_insee": [c[0] for c in COMMUNES],
            "nom": [c[1] for c in COMMUNES],
            "type": ["commune"] * len(COMMUNES),
            "parent": [None] * len(COMMUNES),
            "code_dep": [c[2] for c in COMMUNES],
            "code_reg": [c[3] for c in COMMUNES],
            "siren_epci": [c[4] for c in COMMUNES],
            "population": [c[5] for c in COMMUNES],
        },
        geometry=[square(c[6], c[7]) for c in COMMUNES],
        crs=CRS,
    )
    qpv = gpd.GeoDataFrame(
        {
            "code_qp": [q[0] for q in QPV],
            "nom": [q[1] for q in QPV],
            "communes": [q[2] for q in QPV],
            "code_dep": [q[2][0][:2] for q in QPV],
            "code_reg": ["11" if q[2][0].startswith("93") else "75" for q in QPV],
            "siren_epci": [
                next(c[4] for c in COMMUNES if c[0] == q[2][0]) for q in QPV
            ],
            "population": pd.array([q[3] for q in QPV], dtype="Int64"),
            "population_source": ["INSEE pop_QPV24" if q[3] is not None else None
                                  for q in QPV],
            "geom_kind": [q[4] for q in QPV],
        },
        geometry=[
            square(q[5], q[6], 0.003) if q[4] == "polygon" else Point(q[5], q[6]) for q in QPV
        ],
        crs=CRS,
    )
    epci_geoms = [
        unary_union(list(communes.loc[communes["siren_epci"] == e[0], "geometry"])) for e in EPCI
    ]
    epci = gpd.GeoDataFrame(
        {
            "siren_epci": [e[0] for e in EPCI],
            "nom": [e[1] for e in EPCI],
            "type": [e[2] for e in EPCI],
            "population": [
                int(communes.loc[communes["siren_epci"] == e[0], "population"].sum()) for e in EPCI
            ],
            "code_deps": [e[3] for e in EPCI],
            "code_regs": [e[4] for e in EPCI],
        },
        geometry=epci_geoms,
        crs=CRS,
    )
    deps = {"33": "Gironde", "64": "Pyrénées-Atlantiques", "17": "Charente-Maritime",
            "93": "Seine-Saint-Denis"}
    departements = gpd.GeoDataFrame(
        {
            "code_dep": list(deps),
            "nom": list(deps.values()),
            "code_reg": ["11" if d == "93" else "75" for d in deps],
        },
        geometry=[
            unary_union(list(communes.loc[communes["code_dep"] == d, "geometry"])).envelope
            for d in deps
        ],
        crs=CRS,
    )
    regions = gpd.GeoDataFrame(
        {"code_reg": ["75", "11"], "nom": ["Nouvelle-Aquitaine", "Île-de-France"]},
        geometry=[
            unary_union(list(departements.loc[departements["code_reg"] == r, "geometry"])).envelope
            for r in ["75", "11"]
        ],
        crs=CRS,
    )
    contrats = gpd.GeoDataFrame(
        {
            "code_cv": ["CN03301I", "CN06401I"],
            "nom": ["33 - Bordeaux Métropole", "64 - CA Pau Béarn Pyrénées"],
            "siren": ["243300316", "200067254"],
            "siren_epci": ["243300316", "200067254"],
            "code_dep": ["33", "64"],
            "generation": ["2024-2030", "2024-2030"],
            "population": [91004.0, 12000.0],
        },
        geometry=[Point(-0.57, 44.85), Point(-0.37, 43.30)],
        crs=CRS,
    )
    cites = gpd.GeoDataFrame(
        {
            "id_cite": ["cite-090", "cite-141", "cite-038"],
            "nom": ["Bordeaux", "Cenon", "Lormont"],
            "communes": [["33063"], ["33119"], ["33249"]],
            "code_dep": ["33", "33", "33"],
        },
        geometry=[Point(-0.585, 44.845), Point(-0.555, 44.835), Point(-0.545, 44.845)],
        crs=CRS,
    )
    return Layers(
        regions=regions,
        departements=departements,
        epci=epci,
        communes=communes,
        qpv=qpv,
        contrats_ville=contrats,
        cites_educatives=cites,
    )
