"""Territory index: names, hierarchy and footprints of every territory in the layers.

Built once from :class:`~territoires.pipeline.layers.Layers` (pure, no I/O). A territory is a pair
``(level, code)`` with ``level`` in the ``territory_level`` vocabulary.

Footprint semantics (used for filters, "reached", coverage): every territory is a set of
communes, plus, for a QPV, the QPV code itself. Two territories intersect when their commune
sets intersect, except that a QPV intersects another QPV only if it is the same one.
Régions, départements, EPCI and contrats de ville expand to their communes; a cité éducative
to its communes; a municipal arrondissement (Paris, Lyon, Marseille) belongs to its parent
commune's footprint as well as its own.

Implementation notes (vectorised; everything is built once in :meth:`from_layers`):

- every territory has an integer id (``tid``, its row in :attr:`TerritoryIndex.table`) and
  "own" rows ``(tid, commune, qpv-or--1)``: the communes it is made of (a parent commune owns
  its arrondissements; an arrondissement owns only itself; a QPV owns its communes, each row
  carrying the QPV). The :class:`Footprint` of a territory is its own communes plus the
  parent communes of its arrondissements.
- ``A`` intersects ``B`` when a row ``(c, q)`` owned by ``A`` has ``c`` in ``B``'s footprint
  and (``q`` is -1, or ``B`` is not a QPV, or ``q`` is ``B``'s QPV). Because an arrondissement
  owns only itself, two sibling arrondissements do not intersect, while both intersect their
  parent commune (and anything containing it).
- :meth:`TerritoryIndex.incidence` gives, per unit level (région, département, EPCI,
  commune, QPV), a sparse territory -> units matrix with population weights used to share
  out funding lines (see :func:`territoires.analysis.queries.aggregate`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from territoires.errors import UnknownTerritoryError
from territoires.pipeline.layers import Layers
from territoires.vocab import TERRITORY_LEVELS, fold

#: Levels in display order.
LEVEL_ORDER: tuple[str, ...] = (
    "region",
    "departement",
    "epci",
    "commune",
    "qpv",
    "contrat_ville",
    "cite_educative",
)
#: Levels usable as aggregation units (see :meth:`TerritoryIndex.incidence`).
UNIT_LEVELS: tuple[str, ...] = ("region", "departement", "epci", "commune", "qpv")


@dataclass(frozen=True)
class Footprint:
    """Communes covered by a territory; ``qpvs`` is set only for QPV-level territories."""

    communes: frozenset[str]
    qpvs: frozenset[str] | None = None


@dataclass(frozen=True)
class Incidence:
    """Sparse territory -> unit matrix in CSR form.

    ``indptr`` (length n_territories + 1) and ``indices`` (unit positions in ``units``) give,
    for each territory id, the units of one level it intersects; ``row`` repeats the territory
    id for each stored entry; ``weight`` is the unit's share of the territory's population
    among those units (equal shares when no population is known).
    """

    level: str
    units: pd.DataFrame
    indptr: np.ndarray
    indices: np.ndarray
    row: np.ndarray
    weight: np.ndarray

    def gather(self, tids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For territory ids ``tids``: ``(positions into tids, unit positions)`` pairs."""
        return csr_gather(self.indptr, self.indices, np.asarray(tids, dtype=np.int64))


def csr_gather(
    indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=indices.dtype)
    rep = np.repeat(np.arange(len(rows), dtype=np.int64), lens)
    first = np.cumsum(lens) - lens
    offsets = np.arange(total, dtype=np.int64) - np.repeat(first - starts, lens)
    return rep, indices[offsets]


def _indptr(sorted_rows: np.ndarray, n: int) -> np.ndarray:
    counts = np.bincount(sorted_rows, minlength=n) if len(sorted_rows) else np.zeros(n, int)
    out = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _str(value: object) -> str | None:
    if value is None:
        return None
    try:
        if pd.isna(value):  # type: ignore[arg-type]
            return None
    except (TypeError, ValueError):
        pass
    text = str(value).strip()
    return text or None


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    try:
        return [str(v) for v in value if _str(v)]  # type: ignore[attr-defined]
    except TypeError:
        return []


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name]
    return pd.Series([None] * len(df), index=df.index, dtype="object")


class TerritoryIndex:
    """Lookup of territories by level and code (see module docstring).

    Attributes:
        table: one row per territory: ``level, code, nom, label, code_dep, code_reg,
            siren_epci, population`` (``label`` is e.g. "Cenon (33119) — Commune"), sorted for
            display (régions, départements, EPCI, communes, QPV, contrats, cités).
        commune_qpv: rows ``code_insee, code_qp`` (a QPV on several communes has several rows).
    """

    table: pd.DataFrame
    commune_qpv: pd.DataFrame

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_layers(cls, layers: Layers) -> TerritoryIndex:
        """Build the index from the reference layers."""
        self = cls.__new__(cls)
        self._build(layers)
        return self

    def _build(self, layers: Layers) -> None:
        com = layers.communes
        commune_codes = com["code_insee"].astype(str).to_numpy(dtype=object)
        n_com = len(commune_codes)
        com_index = pd.Index(commune_codes)
        com_pos: dict[str, int] = {str(c): i for i, c in enumerate(commune_codes)}

        def positions(codes: list[str]) -> np.ndarray:
            return np.array([com_pos.get(c, -1) for c in codes], dtype=np.int64)
        ctype = _col(com, "type").fillna("commune").astype(str).to_numpy(dtype=object)
        parent_codes = [_str(p) for p in _col(com, "parent")]
        parent_idx = np.array([com_pos.get(p, -1) if p else -1 for p in parent_codes],
                              dtype=np.int64)
        is_arr = (ctype == "arrondissement") & (parent_idx >= 0)
        parent_idx = np.where(is_arr, parent_idx, -1)

        def attr(name: str) -> np.ndarray:
            vals = np.array([_str(v) for v in _col(com, name)], dtype=object)
            # arrondissements inherit missing attributes from their parent commune
            missing = is_arr & np.array([v is None for v in vals], dtype=bool)
            vals[missing] = vals[parent_idx[missing]]
            return vals

        c_dep, c_reg, c_epci = attr("code_dep"), attr("code_reg"), attr("siren_epci")
        c_pop = pd.to_numeric(_col(com, "population"), errors="coerce").to_numpy(dtype=float)
        self._commune_codes = commune_codes
        self._commune_index = com_index
        self._commune_parent = parent_idx
        self._commune_is_arr = is_arr

        qpv = layers.qpv
        qpv_codes = qpv["code_qp"].astype(str).to_numpy(dtype=object)
        self._qpv_codes = qpv_codes
        self._qpv_index = pd.Index(qpv_codes)

        rows: list[dict[str, object]] = []
        own_t: list[np.ndarray] = []
        own_c: list[np.ndarray] = []
        own_q: list[np.ndarray] = []

        def add_rows(tid: int, communes: np.ndarray, qpv_i: int = -1) -> None:
            communes = np.unique(communes[communes >= 0])
            own_t.append(np.full(len(communes), tid, dtype=np.int64))
            own_c.append(communes.astype(np.int64))
            own_q.append(np.full(len(communes), qpv_i, dtype=np.int64))

        # children of parent communes
        arr_children: dict[int, list[int]] = {}
        for child in np.flatnonzero(is_arr):
            arr_children.setdefault(int(parent_idx[child]), []).append(int(child))

        def with_children(idx: np.ndarray) -> np.ndarray:
            extra = [c for i in idx.tolist() for c in arr_children.get(i, ())]
            return np.concatenate([idx, np.array(extra, dtype=np.int64)]) if extra else idx

        def group_positions(values: np.ndarray) -> dict[str, np.ndarray]:
            s = pd.Series(np.arange(n_com), index=pd.Index(values, dtype=object))
            s = s[s.index.notna()]
            return {str(k): v.to_numpy() for k, v in s.groupby(level=0, sort=False)}

        by_reg, by_dep, by_epci = group_positions(c_reg), group_positions(c_dep), group_positions(
            c_epci
        )
        main = ~is_arr

        def pop_sum(idx: np.ndarray) -> float:
            idx = idx[main[idx]]
            vals = c_pop[idx]
            return float(np.nansum(vals)) if len(vals) and not np.isnan(vals).all() else np.nan

        def new(level: str, code: str, nom: str | None, **extra: object) -> int:
            tid = len(rows)
            row = {"level": level, "code": code, "nom": nom or code, "code_dep": None,
                   "code_reg": None, "siren_epci": None, "population": np.nan}
            row.update(extra)
            rows.append(row)
            return tid

        empty = np.empty(0, dtype=np.int64)
        for _, r in layers.regions.iterrows():
            code = str(r["code_reg"])
            idx = by_reg.get(code, empty)
            pop = pd.to_numeric(r.get("population", np.nan), errors="coerce")
            tid = new("region", code, _str(r.get("nom")), code_reg=code,
                      population=pop if pd.notna(pop) else pop_sum(idx))
            add_rows(tid, idx)
        for _, r in layers.departements.iterrows():
            code = str(r["code_dep"])
            idx = by_dep.get(code, empty)
            pop = pd.to_numeric(r.get("population", np.nan), errors="coerce")
            tid = new("departement", code, _str(r.get("nom")), code_dep=code,
                      code_reg=_str(r.get("code_reg")),
                      population=pop if pd.notna(pop) else pop_sum(idx))
            add_rows(tid, idx)
        epci_rows: dict[str, np.ndarray] = {}
        for _, r in layers.epci.iterrows():
            code = str(r["siren_epci"])
            idx = by_epci.get(code, empty)
            epci_rows[code] = idx
            deps = _as_list(r.get("code_deps"))
            regs = _as_list(r.get("code_regs"))
            pop = pd.to_numeric(r.get("population"), errors="coerce")
            tid = new("epci", code, _str(r.get("nom")), siren_epci=code,
                      code_dep=deps[0] if deps else None, code_reg=regs[0] if regs else None,
                      population=float(pop) if pd.notna(pop) else pop_sum(idx))
            add_rows(tid, idx)
        com_noms = _col(com, "nom").to_numpy(dtype=object)
        first_commune_tid = len(rows)
        for i in range(n_com):
            new("commune", str(commune_codes[i]), _str(com_noms[i]), code_dep=c_dep[i],
                code_reg=c_reg[i], siren_epci=c_epci[i], population=c_pop[i])
        # a commune owns itself and, for Paris/Lyon/Marseille, its arrondissements
        children = np.flatnonzero(is_arr)
        own_c.append(np.concatenate([np.arange(n_com), children]).astype(np.int64))
        own_t.append(first_commune_tid + np.concatenate([np.arange(n_com), parent_idx[children]]))
        own_q.append(np.full(n_com + len(children), -1, dtype=np.int64))
        qpv_communes = [_as_list(v) for v in _col(qpv, "communes")]
        qpv_pop = pd.to_numeric(_col(qpv, "population"), errors="coerce").to_numpy(dtype=float)
        qpv_noms = _col(qpv, "nom").to_numpy(dtype=object)
        qpv_dep = _col(qpv, "code_dep").to_numpy(dtype=object)
        qpv_reg = _col(qpv, "code_reg").to_numpy(dtype=object)
        qpv_epci = _col(qpv, "siren_epci").to_numpy(dtype=object)
        cq_rows: list[tuple[str, str]] = []
        for j, code in enumerate(qpv_codes):
            idx = positions(qpv_communes[j])
            idx = idx[idx >= 0]
            tid = new("qpv", str(code), _str(qpv_noms[j]), code_dep=_str(qpv_dep[j]),
                      code_reg=_str(qpv_reg[j]), siren_epci=_str(qpv_epci[j]),
                      population=qpv_pop[j])
            add_rows(tid, idx.astype(np.int64), j)
            cq_rows.extend((str(commune_codes[i]), str(code)) for i in idx)
        self.commune_qpv = pd.DataFrame(cq_rows, columns=["code_insee", "code_qp"])
        siren_commune = (
            group_positions(np.array([_str(v) for v in com["siren_commune"]], dtype=object))
            if "siren_commune" in com.columns else {}
        )
        for _, r in layers.contrats_ville.iterrows():
            code = str(r["code_cv"])
            epci = _str(r.get("siren_epci"))
            siren = _str(r.get("siren"))
            if epci and epci in epci_rows:
                idx = epci_rows[epci]
            elif siren and siren in epci_rows:
                idx = epci_rows[siren]
            elif siren and siren in siren_commune:
                idx = with_children(siren_commune[siren])
            else:
                idx = empty
            pop = pd.to_numeric(r.get("population"), errors="coerce")
            tid = new("contrat_ville", code, _str(r.get("nom")), code_dep=_str(r.get("code_dep")),
                      siren_epci=epci, population=float(pop) if pd.notna(pop) else pop_sum(idx))
            add_rows(tid, idx)
        for _, r in layers.cites_educatives.iterrows():
            code = str(r["id_cite"])
            idx = positions(_as_list(r.get("communes")))
            idx = with_children(idx[idx >= 0].astype(np.int64))
            tid = new("cite_educative", code, _str(r.get("nom")), code_dep=_str(r.get("code_dep")),
                      population=pop_sum(idx))
            add_rows(tid, idx)

        table = pd.DataFrame(rows)
        table["population"] = pd.to_numeric(table["population"], errors="coerce").astype(float)
        level_labels = table["level"].map(TERRITORY_LEVELS.label_of)
        table["label"] = (
            table["nom"].astype(str) + " (" + table["code"].astype(str) + ") — " + level_labels
        )
        table = table[["level", "code", "nom", "label", "code_dep", "code_reg", "siren_epci",
                       "population"]]
        for c in ["level", "code", "nom", "label", "code_dep", "code_reg", "siren_epci"]:
            table[c] = table[c].astype("str")
            table.loc[table[c] == "None", c] = pd.NA
        # rows were generated level by level in display order; sort by code within level
        order = np.lexsort((table["code"].to_numpy(dtype=object).astype(str),
                            table["level"].map(LEVEL_ORDER.index).to_numpy()))
        remap = np.empty(len(order), dtype=np.int64)
        remap[order] = np.arange(len(order))
        self.table = table.iloc[order].reset_index(drop=True)
        self._n = len(self.table)
        t = remap[np.concatenate(own_t)] if own_t else np.empty(0, dtype=np.int64)
        c = np.concatenate(own_c) if own_c else np.empty(0, dtype=np.int64)
        q = np.concatenate(own_q) if own_q else np.empty(0, dtype=np.int64)
        o = np.argsort(t, kind="stable")
        self._own_t, self._own_c, self._own_q = t[o], c[o], q[o]
        self._own_indptr = _indptr(self._own_t, self._n)
        self._keys = pd.Index(
            (self.table["level"] + ":" + self.table["code"]).to_numpy(dtype=object)
        )
        self._levels = self.table["level"].to_numpy(dtype=object)
        self._pop = self.table["population"].to_numpy(dtype=float)
        self._folded = pd.Series([fold(x) for x in self.table["nom"].astype(str)], dtype="str")
        self._codes_lower = self.table["code"].str.lower()
        self._footprints: dict[int, Footprint] = {}
        self._incidence: dict[str, Incidence] = {}
        self._qpv_pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._match_cache: dict[tuple[tuple[str, str], ...], np.ndarray] = {}
        self._key_tid: dict[str, int] = {k: i for i, k in enumerate(self._keys)}

    # -- lookups ------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n

    def tid(self, level: str, code: str) -> int:
        """Territory id (row of :attr:`table`) or -1 when unknown."""
        return self._key_tid.get(f"{level}:{code}", -1)

    def tids(self, levels: pd.Series | np.ndarray, codes: pd.Series | np.ndarray) -> np.ndarray:
        """Vectorised :meth:`tid` (-1 where unknown)."""
        keys = pd.Series(np.asarray(levels, dtype=object)).astype(str) + ":" + pd.Series(
            np.asarray(codes, dtype=object)
        ).astype(str)
        return self._keys.get_indexer(keys.to_numpy(dtype=object)).astype(np.int64)

    def _require(self, level: str, code: str) -> int:
        tid = self.tid(level, code)
        if tid < 0:
            raise UnknownTerritoryError(
                f"Territoire inconnu : niveau « {TERRITORY_LEVELS.label_of(level)} » "
                f"({level}), code « {code} » absent des couches de référence."
            )
        return tid

    def exists(self, level: str, code: str) -> bool:
        """Whether ``(level, code)`` is a known territory."""
        return self.tid(level, code) >= 0

    def name(self, level: str, code: str) -> str:
        """Official name (the code itself if unknown)."""
        tid = self.tid(level, code)
        return str(self.table.at[tid, "nom"]) if tid >= 0 else str(code)

    def label(self, level: str, code: str) -> str:
        """Display label "Nom (code) — Niveau"."""
        tid = self.tid(level, code)
        if tid >= 0:
            return str(self.table.at[tid, "label"])
        return f"{code} ({code}) — {TERRITORY_LEVELS.label_of(level)}"

    def population(self, level: str, code: str) -> float | None:
        """Population (None where unknown, e.g. most QPV offline)."""
        tid = self.tid(level, code)
        if tid < 0 or np.isnan(self._pop[tid]):
            return None
        return float(self._pop[tid])

    def footprint(self, level: str, code: str) -> Footprint:
        """Footprint of a territory (raises UnknownTerritoryError if unknown)."""
        tid = self._require(level, code)
        cached = self._footprints.get(tid)
        if cached is None:
            communes = self._fp_communes(tid)
            qpvs = frozenset([code]) if level == "qpv" else None
            cached = Footprint(frozenset(self._commune_codes[communes].tolist()), qpvs)
            self._footprints[tid] = cached
        return cached

    def _fp_communes(self, tid: int) -> np.ndarray:
        own = self._own_c[self._own_indptr[tid]:self._own_indptr[tid + 1]]
        parents = self._commune_parent[own]
        return np.unique(np.concatenate([own, parents[parents >= 0]]))

    def search(self, text: str, limit: int = 20) -> pd.DataFrame:
        """Territories whose name or code matches ``text`` (accent- and case-insensitive,
        prefix matches on words first), at most ``limit`` rows of :attr:`table`."""
        q = fold(text)
        if not q:
            return self.table.iloc[0:0]
        code_q = q.replace(" ", "")
        rank = np.full(self._n, 9, dtype=np.int64)
        contains = self._folded.str.contains(q, regex=False).to_numpy(dtype=bool)
        rank[contains] = 3
        word = self._folded.str.contains(r"(?:^|[\s\-'(])" + re.escape(q), regex=True)
        rank[word.to_numpy(dtype=bool)] = 2
        rank[self._folded.str.startswith(q).to_numpy(dtype=bool)] = 1
        rank[(self._folded == q).to_numpy(dtype=bool)] = 0
        rank[self._codes_lower.str.startswith(code_q).to_numpy(dtype=bool)] = np.minimum(
            rank[self._codes_lower.str.startswith(code_q).to_numpy(dtype=bool)], 1
        )
        rank[(self._codes_lower == code_q).to_numpy(dtype=bool)] = 0
        hits = np.flatnonzero(rank < 9)
        level_rank = np.array([LEVEL_ORDER.index(x) for x in self._levels[hits]], dtype=int)
        pop = np.nan_to_num(self._pop[hits], nan=-1.0)
        order = np.lexsort((-pop, level_rank, rank[hits]))
        return self.table.iloc[hits[order][:limit]]

    # -- intersections ------------------------------------------------------------------

    def _intersecting(self, tid: int) -> np.ndarray:
        """Boolean mask over territory ids of territories intersecting ``tid``."""
        cmask = np.zeros(len(self._commune_codes), dtype=bool)
        cmask[self._fp_communes(tid)] = True
        ok = cmask[self._own_c]
        if self._levels[tid] == "qpv":
            qi = int(self._qpv_index.get_indexer([self.table.at[tid, "code"]])[0])
            ok &= (self._own_q < 0) | (self._own_q == qi)
        mask = np.zeros(self._n, dtype=bool)
        mask[self._own_t[ok]] = True
        return mask

    def matching(self, territories: tuple[tuple[str, str], ...]) -> np.ndarray:
        """Boolean mask over territory ids: territories intersecting one of ``territories``
        (raises UnknownTerritoryError on an unknown one). Cached."""
        key = tuple(territories)
        cached = self._match_cache.get(key)
        if cached is None:
            cached = np.zeros(self._n, dtype=bool)
            for level, code in key:
                cached |= self._intersecting(self._require(level, code))
            if len(self._match_cache) > 256:
                self._match_cache.clear()
            self._match_cache[key] = cached
        return cached

    def qpv_in(self, level: str, code: str) -> list[str]:
        """QPV codes intersecting the territory."""
        return self.members(level, code, "qpv")

    def members(self, level: str, code: str, member_level: str) -> list[str]:
        """Codes of ``member_level`` territories intersecting ``(level, code)`` (e.g. the
        communes of a département, the EPCI of a région)."""
        mask = self._intersecting(self._require(level, code)) & (self._levels == member_level)
        return self.table["code"].to_numpy(dtype=object)[mask].tolist()

    # -- aggregation support -------------------------------------------------------------

    def incidence(self, level: str) -> Incidence:
        """Territory -> units of ``level`` (in :data:`UNIT_LEVELS`) it intersects, with
        population weights. Units of level ``commune`` are communes proper: an arrondissement
        counts towards its parent commune. Cached."""
        if level not in UNIT_LEVELS:
            raise ValueError(f"Niveau d'agrégation inconnu : {level}")
        cached = self._incidence.get(level)
        if cached is not None:
            return cached
        unit_tids = np.flatnonzero(self._levels == level)
        if level == "commune":
            codes = self.table["code"].to_numpy(dtype=object)[unit_tids]
            ci = self._commune_index.get_indexer(pd.Index(codes, dtype=object))
            unit_tids = unit_tids[~self._commune_is_arr[ci]]
        units = self.table.iloc[unit_tids].reset_index(drop=True)
        units.insert(0, "tid", unit_tids)
        # footprint rows of each unit: (unit position, commune, unit qpv or -1)
        rep, comms = csr_gather(self._own_indptr, self._own_c, unit_tids)
        parents = self._commune_parent[comms]
        has_parent = parents >= 0
        u_pos = np.concatenate([rep, rep[has_parent]])
        u_com = np.concatenate([comms, parents[has_parent]])
        if level == "qpv":
            uq = self._qpv_index.get_indexer(pd.Index(units["code"].to_numpy(dtype=object)))
            u_q = uq[u_pos]
        else:
            u_q = np.full(len(u_pos), -1, dtype=np.int64)
        ufp = pd.DataFrame({"u": u_pos, "c": u_com, "uq": u_q}).drop_duplicates()
        own = pd.DataFrame({"t": self._own_t, "c": self._own_c, "q": self._own_q})
        pairs = own.merge(ufp, on="c", how="inner")
        pairs = pairs[(pairs["q"] < 0) | (pairs["uq"] < 0) | (pairs["q"] == pairs["uq"])]
        pairs = pairs[["t", "u"]].drop_duplicates().sort_values(["t", "u"])
        t = pairs["t"].to_numpy(dtype=np.int64)
        u = pairs["u"].to_numpy(dtype=np.int64)
        upop = np.nan_to_num(units["population"].to_numpy(dtype=float), nan=0.0)
        p = upop[u]
        tot = np.bincount(t, weights=p, minlength=self._n)
        cnt = np.bincount(t, minlength=self._n).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(tot[t] > 0, p / tot[t], 1.0 / cnt[t])
        inc = Incidence(level, units, _indptr(t, self._n), u, t, weight)
        self._incidence[level] = inc
        return inc

    def qpv_unit_pairs(self, level: str) -> tuple[np.ndarray, np.ndarray]:
        """(QPV unit position, unit position of ``level``) pairs, positions in the units of
        :meth:`incidence`: the units each QPV lies in (a QPV on two communes lies in both).
        Cached."""
        cached = self._qpv_pairs.get(level)
        if cached is not None:
            return cached
        qinc = self.incidence("qpv")
        if level == "qpv":
            n = len(qinc.units)
            pairs = (np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64))
        else:
            rep, units = self.incidence(level).gather(qinc.units["tid"].to_numpy(dtype=np.int64))
            pairs = (rep.astype(np.int64), units.astype(np.int64))
        self._qpv_pairs[level] = pairs
        return pairs
