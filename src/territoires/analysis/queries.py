"""Queries and aggregates over the catalogue: pure functions the dashboard calls.

Inputs are a :class:`~territoires.catalogue.model.Catalogue` (seed initiatives plus national funding
lines), a :class:`~territoires.pipeline.territories.TerritoryIndex` and :class:`Filters`.

Meaning of the filters:
- ``territories``: union of territories; an initiative matches when one of its territories
  intersects one of them (see :mod:`territoires.pipeline.territories` for footprints), so a
  département includes its EPCI, communes and QPV and a commune includes its QPV; a funding
  line matches when its own territory intersects.
- list filters (themes, publics, maturity, alliance_levels, porteur_types): any-of within a
  filter, all filters combined with AND.
- ``funder_types``, ``schemes``, ``years``, ``amount``: an initiative matches when at least one
  of its funding lines matches all of them; funding lines are filtered line by line.
  ``years`` keeps initiatives active during the range (start/end dates) when they have no
  funding line.
- ``text``: accent- and case-insensitive search in title, summary, porteurs and partners
  names, objectives, actions and results; every word of the query must occur.

Funding lines: a line attached to an initiative is kept only when that initiative is
selected; unattached lines (national adultes-relais, FONJEP…) only go through the line
filters (territory, funder types, schemes, years, amount).

Performance: :func:`prepare` turns a catalogue into numpy arrays once (territory pairs as
integer ids of the index, boolean matrices for list fields, an inverted index of the folded
text, funding arrays, text columns of few values as small integer codes) and memoises the
result on the catalogue's identity; :func:`select` and the aggregates then work with
vectorised masks only. Catalogues are treated as immutable.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from territoires.catalogue.model import Catalogue
from territoires.errors import UnknownTerritoryError
from territoires.pipeline.territories import TerritoryIndex, csr_gather
from territoires.vocab import (
    ALLIANCE_LEVELS,
    FUNDER_TYPES,
    MATURITY,
    ORG_TYPES,
    PUBLICS,
    SCALES,
    SCHEMES,
    TERRITORY_LEVELS,
    THEMES,
    Vocabulary,
    fold,
)

_LIST_FIELDS = (
    "themes",
    "publics",
    "maturity",
    "alliance_levels",
    "porteur_types",
    "funder_types",
    "schemes",
)


@dataclass(frozen=True)
class Filters:
    """The shared filters of every page (all empty = everything)."""

    territories: tuple[tuple[str, str], ...] = ()
    themes: tuple[str, ...] = ()
    publics: tuple[str, ...] = ()
    maturity: tuple[str, ...] = ()
    alliance_levels: tuple[str, ...] = ()
    porteur_types: tuple[str, ...] = ()
    funder_types: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    years: tuple[int, int] | None = None
    amount: tuple[float, float] | None = None
    text: str = ""

    def is_empty(self) -> bool:
        """True when no filter is set."""
        return self == Filters()

    def to_params(self) -> dict[str, str]:
        """Query-string parameters (only set filters): ``t=commune:33119,qpv:QN03307M``,
        ``themes=a,b``, ``years=2021-2024``, ``amount=0-50000``, ``q=text``."""
        params: dict[str, str] = {}
        if self.territories:
            params["t"] = ",".join(f"{lvl}:{code}" for lvl, code in self.territories)
        for name in _LIST_FIELDS:
            values = getattr(self, name)
            if values:
                params[name] = ",".join(values)
        if self.years:
            params["years"] = f"{self.years[0]}-{self.years[1]}"
        if self.amount:
            params["amount"] = f"{self.amount[0]:g}-{self.amount[1]:g}"
        if self.text:
            params["q"] = self.text
        return params

    @classmethod
    def from_params(cls, params: dict[str, str | list[str]]) -> Filters:
        """Inverse of :meth:`to_params`; malformed parts are ignored (a shared link never
        crashes the app). Vocabulary codes are not checked here."""

        def get(key: str) -> str:
            value = params.get(key, "")
            if isinstance(value, list):
                value = value[-1] if value else ""
            return str(value).strip()

        def split(key: str) -> tuple[str, ...]:
            return tuple(v for v in (p.strip() for p in get(key).split(",")) if v)

        territories = tuple(
            (lvl, code)
            for lvl, _, code in (t.partition(":") for t in split("t"))
            if lvl and code
        )
        kwargs: dict[str, object] = {"territories": territories}
        for name in _LIST_FIELDS:
            kwargs[name] = split(name)
        for name, number in (("years", int), ("amount", float)):
            text = get(name)
            if text:
                try:
                    lo, hi = (number(x) for x in text.split("-", 1))
                except ValueError:  # not "a-b" with numbers: ignored (see url_notices)
                    continue
                kwargs[name] = (min(lo, hi), max(lo, hi))
        kwargs["text"] = get("q")
        return cls(**kwargs)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> Filters:
        """A copy with some fields changed."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Filters(**values)  # type: ignore[arg-type]


@dataclass
class Selection:
    """Result of :func:`select`.

    ``catalogue``: matching initiatives with their organisations, territories, indicators and
    their own funding lines (those matching the funding filters).
    ``funding``: every funding line matching the filters, attached to an initiative or not
    (national adultes-relais and FONJEP lines included).
    ``prepared``, ``initiative_mask`` and ``funding_mask`` (set by :func:`select`) locate the
    selection in the :class:`PreparedCatalogue` it came from, so that aggregates need not
    recompute anything; a Selection built by hand without them is prepared on demand.
    """

    catalogue: Catalogue
    funding: pd.DataFrame
    filters: Filters = field(default_factory=Filters)
    prepared: PreparedCatalogue | None = field(default=None, repr=False, compare=False)
    initiative_mask: np.ndarray | None = field(default=None, repr=False, compare=False)
    funding_mask: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class KeyFigures:
    """Key figures of a selection (Accueil page)."""

    initiatives: int
    porteurs: int
    funding_initiatives_eur: float
    funding_all_eur: float
    territories_reached: int
    qpv_reached: int
    qpv_in_area: int
    #: inhabitants of the reached QPV / of the area's QPV (known figures only; None when no
    #: QPV concerned has a known population: "inconnue", never 0)
    qpv_population_reached: float | None = None
    qpv_population_in_area: float | None = None
    #: QPV of the area whose population is unknown
    qpv_population_unknown: int = 0


# -- preparation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Coded:
    """A text column of few distinct values as small integer codes: ``values[codes]`` is the
    column (missing values as ""). 1 byte a row instead of a Python string reference (25 MB
    for the funder types and schemes of 200,000 funding lines)."""

    codes: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, series: pd.Series) -> Coded:
        """Codes of ``series`` (as text; missing values as "")."""
        codes, values = pd.factorize(series.astype("str").fillna("").to_numpy(dtype=object))
        small = next(t for t in (np.int8, np.int16, np.int32, np.int64)
                     if len(values) <= np.iinfo(t).max)
        return cls(codes.astype(small), np.asarray(values, dtype=object))

    def isin(self, wanted: Sequence[str]) -> np.ndarray:
        """Boolean mask of the rows whose value is in ``wanted`` (as ``np.isin``)."""
        keep = np.isin(self.values, list(wanted))
        return keep[self.codes] if len(self.values) else np.zeros(len(self.codes), dtype=bool)

    def decoded(self) -> np.ndarray:
        """The column as an object array of strings."""
        return self.values[self.codes] if len(self.values) else np.empty(0, dtype=object)

    def __len__(self) -> int:
        return len(self.codes)


@dataclass
class PreparedCatalogue:
    """Vectorised form of a catalogue against one :class:`TerritoryIndex` (built once by
    :func:`prepare`). Positions refer to rows of the catalogue's tables; it holds no
    reference to the catalogue itself, so the memo dies with the catalogue."""

    index: TerritoryIndex
    n: int
    ids: np.ndarray
    #: unique (initiative position, territory id) pairs (unknown territories left out)
    it_init: np.ndarray
    it_tid: np.ndarray
    #: list filters: name -> (codes, boolean matrix initiatives x codes)
    lists: dict[str, tuple[dict[str, int], np.ndarray]]
    maturity: Coded
    start_year: np.ndarray
    end_year: np.ndarray
    #: inverted index of the folded text of each initiative (title, summary, objectives,
    #: actions, results) and of its structures' names: distinct whitespace-separated tokens,
    #: and for each token (CSR) the initiatives containing it (int32 positions). The folded
    #: text itself is not kept (30 MB at 50,000 initiatives): a query word has no blank, so
    #: it occurs in a text iff it occurs in one of its tokens.
    tokens: pd.Series
    token_indptr: np.ndarray
    token_postings: np.ndarray
    org_pos: np.ndarray
    porteur_key: np.ndarray
    terr_pos: np.ndarray
    ind_pos: np.ndarray
    f_init: np.ndarray
    f_tid: np.ndarray
    f_amount: np.ndarray
    f_year_start: np.ndarray
    f_year_end: np.ndarray
    f_funder_type: Coded
    f_scheme: Coded
    f_has_line: np.ndarray


_CACHE: dict[int, tuple[weakref.ref, int, tuple[int, ...], PreparedCatalogue]] = {}


def _to_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split("|") if v.strip()]
    if isinstance(value, float) and np.isnan(value):
        return []
    try:
        return [str(v).strip() for v in value if str(v).strip()]  # type: ignore[attr-defined]
    except TypeError:
        return []


def _fold_arrow(series: pd.Series) -> pa.Array:
    """Vectorised :func:`territoires.vocab.fold` in Arrow's C++ kernels (RE2), about 10x
    faster than pandas' per-value ``str`` methods: NFKD, combining accents dropped,
    lower case (and ß -> ss, as ``casefold``), typographic apostrophe, blanks collapsed."""
    values = series.astype("str").fillna("").to_numpy(dtype=object)
    arr = pa.array(values, type=pa.large_string())
    arr = pc.utf8_normalize(arr, form="NFKD")
    arr = pc.replace_substring_regex(arr, pattern="[\\x{0300}-\\x{036f}]", replacement="")
    arr = pc.replace_substring(pc.utf8_lower(arr), pattern="ß", replacement="ss")
    arr = pc.replace_substring(arr, pattern="’", replacement="'")
    arr = pc.replace_substring_regex(arr, pattern="[\\s\\p{Z}]+", replacement=" ")
    return pc.utf8_trim_whitespace(arr)


def _fold_series(series: pd.Series) -> pd.Series:
    """Vectorised :func:`territoires.vocab.fold` (see :func:`_fold_arrow`)."""
    return pd.Series(_fold_arrow(series).to_numpy(zero_copy_only=False), index=series.index,
                     dtype="str")


def _token_index(folded: pa.Array, pos: np.ndarray, n: int
                 ) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Inverted index of folded texts owned by initiatives ``pos``: (distinct tokens, CSR
    offsets per token, initiative positions), each (token, initiative) pair once."""
    split = pc.utf8_split_whitespace(folded)
    flat = pc.list_flatten(split)
    owner = pos[pc.list_parent_indices(split).to_numpy()] if len(flat) else (
        np.empty(0, dtype=np.int64))
    keep = owner >= 0
    encoded = pc.dictionary_encode(flat)
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    vocabulary = encoded.dictionary.to_numpy(zero_copy_only=False)
    width = max(n, 1)
    keys = np.sort(codes[keep] * width + owner[keep])  # sorting beats np.unique's hashing
    if len(keys):
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
    tok, post = keys // width, keys % width
    indptr = np.zeros(len(vocabulary) + 1, dtype=np.int64)
    np.cumsum(np.bincount(tok, minlength=len(vocabulary)), out=indptr[1:])
    postings = post.astype(np.int32) if n < np.iinfo(np.int32).max else post
    return pd.Series(np.asarray(vocabulary, dtype=object), dtype="str"), indptr, postings


def _positions(ids: pd.Index, values: pd.Series) -> np.ndarray:
    return ids.get_indexer(values.astype("str").to_numpy(dtype=object)).astype(np.int64)


def _year(series: pd.Series) -> np.ndarray:
    years = series.astype("str").str.extract(r"((?:19|20)\d\d)", expand=False)
    return pd.to_numeric(years, errors="coerce").to_numpy(dtype=float)


def _bool_matrix(pos: np.ndarray, values: list[str], n: int) -> tuple[dict[str, int], np.ndarray]:
    codes: dict[str, int] = {}
    cols = np.array([codes.setdefault(v, len(codes)) for v in values], dtype=np.int64)
    matrix = np.zeros((n, max(len(codes), 1)), dtype=bool)
    if len(cols):
        matrix[pos, cols] = True
    return codes, matrix


def prepare(catalogue: Catalogue, index: TerritoryIndex) -> PreparedCatalogue:
    """Vectorised form of ``catalogue`` for ``index``, memoised.

    The cache is keyed on the identity of the catalogue object, of the index and of the five
    tables: catalogues are treated as immutable (replace a table, or build a new Catalogue,
    rather than editing a DataFrame in place). :func:`select` calls this, so callers never
    need to; the UI may call it once after loading to pay the one-off cost up front.
    """
    tables = tuple(id(t) for t in catalogue.tables().values())
    hit = _CACHE.get(id(catalogue))
    if hit is not None and hit[0]() is catalogue and hit[1] == id(index) and hit[2] == tables:
        return hit[3]
    prepared = _prepare(catalogue, index)
    # the folding and tokenising went through Arrow's pool (mimalloc), which keeps freed
    # pages (~100 MB at 50,000 initiatives): give them back
    pa.default_memory_pool().release_unused()
    key = id(catalogue)

    def _drop(_: weakref.ref, key: int = key, cache: dict = _CACHE) -> None:
        cache.pop(key, None)

    if len(_CACHE) >= 8:
        _CACHE.clear()
    _CACHE[key] = (weakref.ref(catalogue, _drop), id(index), tables, prepared)
    return prepared


def _prepare(catalogue: Catalogue, index: TerritoryIndex) -> PreparedCatalogue:
    ini = catalogue.initiatives
    n = len(ini)
    ids_index = pd.Index(ini["id"].astype("str").to_numpy(dtype=object))
    if not ids_index.is_unique:
        ids_index = pd.Index(ids_index.to_numpy(dtype=object))
    ids = ids_index.to_numpy(dtype=object)

    terr = catalogue.territories
    terr_pos = _positions(ids_index, terr["initiative_id"])
    tids = index.tids(terr["level"], terr["code"])
    ok = (terr_pos >= 0) & (tids >= 0)
    pairs = np.empty((0, 2), dtype=np.int64)
    if ok.any():  # distinct (initiative, territory) pairs, sorted, through int64 keys
        width = int(tids[ok].max()) + 1
        keys = np.sort(terr_pos[ok].astype(np.int64) * width + tids[ok].astype(np.int64))
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
        pairs = np.stack([keys // width, keys % width], axis=1)

    lists: dict[str, tuple[dict[str, int], np.ndarray]] = {}
    for name in ("themes", "publics", "alliance_levels"):
        values = [_to_list(v) for v in ini[name].to_numpy(dtype=object)] if name in ini else []
        pos = np.repeat(np.arange(len(values)), [len(v) for v in values])
        lists[name] = _bool_matrix(pos, [x for v in values for x in v], n)

    orgs = catalogue.organisations
    org_pos = _positions(ids_index, orgs["initiative_id"])
    is_porteur = (orgs["role"].astype("str") == "porteur").to_numpy(dtype=bool)
    sel = is_porteur & (org_pos >= 0)
    lists["porteur_types"] = _bool_matrix(
        org_pos[sel], orgs["type"].astype("str").fillna("").to_numpy(dtype=object)[sel].tolist(),
        n,
    )
    folded_names = _fold_arrow(orgs["name"])
    porteur_key = np.where(is_porteur, pd.factorize(
        folded_names.to_numpy(zero_copy_only=False))[0], -1).astype(np.int64)

    parts = [ini[c].astype("str").fillna("") for c in
             ("title", "summary", "objectives", "actions", "results") if c in ini]
    text = parts[0] if parts else pd.Series([""] * n, dtype="str")
    for part in parts[1:]:
        text = text + "\n" + part
    folded_text = _fold_arrow(pd.Series(text.to_numpy(dtype=object), dtype="str"))
    del text, parts
    # the structures' names are searched too: their tokens are posted to their initiative
    tokens, token_indptr, token_postings = _token_index(
        pa.concat_arrays([folded_text, folded_names]),
        np.concatenate([np.arange(n, dtype=np.int64), org_pos.astype(np.int64)]), n)

    fund = catalogue.funding
    f_init = _positions(ids_index, fund["initiative_id"].astype("str").fillna("")) if len(fund) \
        else np.empty(0, dtype=np.int64)
    f_tid = index.tids(fund["territory_level"], fund["territory_code"]) if len(fund) else (
        np.empty(0, dtype=np.int64)
    )
    f_ys = pd.to_numeric(fund["year_start"], errors="coerce").to_numpy(dtype=float)
    f_ye = pd.to_numeric(fund["year_end"], errors="coerce").to_numpy(dtype=float)
    f_ye = np.where(np.isnan(f_ye), f_ys, f_ye)
    has_line = np.zeros(n, dtype=bool)
    has_line[f_init[f_init >= 0]] = True

    return PreparedCatalogue(
        index=index,
        n=n,
        ids=ids,
        it_init=pairs[:, 0].astype(np.int64),
        it_tid=pairs[:, 1].astype(np.int64),
        lists=lists,
        maturity=Coded.of(ini["maturity"]),
        start_year=_year(ini["start_date"]),
        end_year=_year(ini["end_date"]),
        tokens=tokens,
        token_indptr=token_indptr,
        token_postings=token_postings,
        org_pos=org_pos,
        porteur_key=porteur_key,
        terr_pos=terr_pos,
        ind_pos=_positions(ids_index, catalogue.indicators["initiative_id"]),
        f_init=f_init,
        f_tid=f_tid,
        f_amount=pd.to_numeric(fund["amount_eur"], errors="coerce").fillna(0.0)
        .to_numpy(dtype=float),
        f_year_start=f_ys,
        f_year_end=f_ye,
        f_funder_type=Coded.of(fund["funder_type"]),
        f_scheme=Coded.of(fund["scheme"]),
        f_has_line=has_line,
    )


# -- selection -----------------------------------------------------------------------------


def _any_of(p: PreparedCatalogue, name: str, wanted: tuple[str, ...]) -> np.ndarray:
    codes, matrix = p.lists[name]
    cols = [codes[w] for w in wanted if w in codes]
    if not cols:
        return np.zeros(p.n, dtype=bool)
    return matrix[:, cols].any(axis=1)


def select(catalogue: Catalogue, index: TerritoryIndex, filters: Filters) -> Selection:
    """Apply ``filters`` to ``catalogue`` (see the module docstring for their meaning).

    Raises :class:`~territoires.errors.UnknownTerritoryError` when a filter territory is not
    in the index. Pure: the only state is the memoised :func:`prepare` of the catalogue.
    """
    for level, code in filters.territories:
        if not index.exists(level, code):
            raise UnknownTerritoryError(
                f"Filtre de territoire inconnu : niveau « {TERRITORY_LEVELS.label_of(level)} » "
                f"({level}), code « {code} » absent des couches de référence."
            )
    p = prepare(catalogue, index)
    mask = np.ones(p.n, dtype=bool)

    terr_match: np.ndarray | None = None
    if filters.territories:
        terr_match = index.matching(tuple(filters.territories))
        hit = terr_match[p.it_tid]
        mask &= np.bincount(p.it_init[hit], minlength=p.n) > 0

    for name in ("themes", "publics", "alliance_levels", "porteur_types"):
        wanted = getattr(filters, name)
        if wanted:
            mask &= _any_of(p, name, wanted)
    if filters.maturity:
        mask &= p.maturity.isin(filters.maturity)
    words = fold(filters.text).split()
    for word in words:
        # a query word has no blank, so it occurs in the haystack iff it occurs in one token
        hits = np.flatnonzero(p.tokens.str.contains(word, regex=False).to_numpy(dtype=bool))
        found = np.zeros(p.n, dtype=bool)
        found[csr_gather(p.token_indptr, p.token_postings, hits)[1]] = True
        mask &= found

    line_ok = np.ones(len(p.f_init), dtype=bool)
    if filters.funder_types:
        line_ok &= p.f_funder_type.isin(filters.funder_types)
    if filters.schemes:
        line_ok &= p.f_scheme.isin(filters.schemes)
    if filters.years:
        y0, y1 = filters.years
        line_ok &= (p.f_year_start <= y1) & (p.f_year_end >= y0)
    if filters.amount:
        lo, hi = filters.amount
        line_ok &= (p.f_amount >= lo) & (p.f_amount <= hi)
    if filters.funder_types or filters.schemes or filters.years or filters.amount:
        attached = line_ok & (p.f_init >= 0)
        with_line = np.bincount(p.f_init[attached], minlength=p.n) > 0
        if filters.years and not (filters.funder_types or filters.schemes or filters.amount):
            y0, y1 = filters.years
            start = np.nan_to_num(p.start_year, nan=-np.inf)
            end = np.nan_to_num(p.end_year, nan=np.inf)
            active = ~p.f_has_line & (start <= y1) & (end >= y0)
            with_line |= active
        mask &= with_line

    attached = p.f_init >= 0
    own = line_ok & attached
    own[attached] &= mask[p.f_init[attached]]
    everything = line_ok.copy()
    everything[attached] &= mask[p.f_init[attached]]
    if terr_match is not None:
        everything &= (p.f_tid >= 0) & terr_match[np.maximum(p.f_tid, 0)]

    cat = catalogue
    # no copy of a table that keeps every row (the unfiltered national view: 20 concurrent
    # first visits each held a copy of the 200,000 funding lines)
    own_funding = cat.funding if own.all() else cat.funding[own]
    if mask.all():
        sub = Catalogue(
            initiatives=cat.initiatives,
            organisations=cat.organisations,
            territories=cat.territories,
            indicators=cat.indicators,
            funding=own_funding,
        )
    else:
        def keep(pos: np.ndarray) -> np.ndarray:
            return (pos >= 0) & mask[np.maximum(pos, 0)]

        sub = Catalogue(
            initiatives=cat.initiatives[mask],
            organisations=cat.organisations[keep(p.org_pos)],
            territories=cat.territories[keep(p.terr_pos)],
            indicators=cat.indicators[keep(p.ind_pos)],
            funding=own_funding,
        )
    funding = cat.funding if everything.all() else cat.funding[everything]
    return Selection(sub, funding, filters, p, mask, everything)


def _parts(selection: Selection, index: TerritoryIndex) -> tuple[
    PreparedCatalogue, np.ndarray, np.ndarray
]:
    """(prepared catalogue, initiative mask, funding-line mask) of a selection."""
    p = selection.prepared
    if (p is not None and p.index is index and selection.initiative_mask is not None
            and selection.funding_mask is not None):
        return p, selection.initiative_mask, selection.funding_mask
    cat = selection.catalogue
    whole = Catalogue(cat.initiatives, cat.organisations, cat.territories, cat.indicators,
                      selection.funding)
    p = prepare(whole, index)
    return p, np.ones(p.n, dtype=bool), np.ones(len(p.f_init), dtype=bool)


def _area(index: TerritoryIndex, filters: Filters, level: str) -> np.ndarray:
    """Boolean mask over the units of ``level``: units intersecting the filter territories
    (all units when there is none)."""
    inc = index.incidence(level)
    n_units = len(inc.units)
    if not filters.territories:
        return np.ones(n_units, dtype=bool)
    tids = np.array([index.tid(lvl, code) for lvl, code in filters.territories], dtype=np.int64)
    tids = tids[tids >= 0]
    area = np.zeros(n_units, dtype=bool)
    area[inc.gather(tids)[1]] = True
    return area


def _reached(p: PreparedCatalogue, mask: np.ndarray, level: str) -> np.ndarray:
    """Boolean mask over units of ``level`` reached by a selected initiative."""
    inc = p.index.incidence(level)
    tids = np.unique(p.it_tid[mask[p.it_init]])
    reached = np.zeros(len(inc.units), dtype=bool)
    reached[inc.gather(tids)[1]] = True
    return reached


def _unit_counts(p: PreparedCatalogue, mask: np.ndarray, level: str) -> np.ndarray:
    """Number of distinct selected initiatives reaching each unit of ``level``.

    Every initiative's largest territory is counted through per-territory weights (one pass
    over the sparse incidence); only the units of its other territories that fall outside
    the largest one are expanded and deduplicated, so big territories are never expanded."""
    inc = p.index.incidence(level)
    n_units = len(inc.units)
    n_terr = len(inc.indptr) - 1
    keep = mask[p.it_init]
    ti, tt = p.it_init[keep], p.it_tid[keep]
    size = inc.indptr[tt + 1] - inc.indptr[tt]
    order = np.lexsort((-size, ti))
    ti, tt = ti[order], tt[order]
    first = np.ones(len(ti), dtype=bool)
    first[1:] = ti[1:] != ti[:-1]
    w = np.bincount(tt[first], minlength=n_terr).astype(float)
    counts = np.bincount(inc.indices, weights=w[inc.row], minlength=n_units)
    if (~first).any():
        big = np.full(p.n, -1, dtype=np.int64)
        big[ti[first]] = tt[first]
        si, st = ti[~first], tt[~first]
        rep, units = inc.gather(st)
        init = si[rep]
        global_keys = inc.row * n_units + inc.indices  # sorted (CSR order)
        keys = big[init] * n_units + units
        pos = np.minimum(np.searchsorted(global_keys, keys), max(len(global_keys) - 1, 0))
        outside = global_keys[pos] != keys if len(global_keys) else np.ones(len(keys), bool)
        extra = np.unique(init[outside] * n_units + units[outside])
        counts += np.bincount(extra % n_units, minlength=n_units)
    return np.rint(counts).astype(np.int64)


def _unit_funding(p: PreparedCatalogue, fmask: np.ndarray, level: str) -> np.ndarray:
    """Funding (EUR) landing in each unit of ``level`` (shares by population)."""
    inc = p.index.incidence(level)
    m = fmask & (p.f_tid >= 0)
    amt = np.bincount(p.f_tid[m], weights=p.f_amount[m], minlength=len(inc.indptr) - 1)
    return np.bincount(inc.indices, weights=amt[inc.row] * inc.weight,
                       minlength=len(inc.units))


def qpv_population(index: TerritoryIndex) -> np.ndarray:
    """Population of each QPV unit (rows of ``index.incidence("qpv").units``), NaN where
    unknown."""
    return index.incidence("qpv").units["population"].to_numpy(dtype=float)


def _known_sum(pop: np.ndarray, mask: np.ndarray) -> float | None:
    """Sum of the known values of ``pop`` under ``mask``; None when none is known."""
    sel = pop[mask]
    sel = sel[np.isfinite(sel)]
    return float(sel.sum()) if len(sel) else None


def qpv_population_by_unit(index: TerritoryIndex, level: str, reached: np.ndarray
                           ) -> pd.DataFrame:
    """Per unit of ``level`` (rows of ``index.incidence(level).units``), from a boolean mask
    ``reached`` over the QPV units: ``qpv_count`` (QPV in the unit), ``qpv_unknown`` (those
    of unknown population), ``qpv_population`` (known inhabitants of its QPV, NaN when none
    is known or the unit has no QPV), ``qpv_population_reached`` (known inhabitants of its
    reached QPV, NaN likewise) and ``qpv_share_reached`` (their ratio, NaN likewise)."""
    n_units = len(index.incidence(level).units)
    q, u = index.qpv_unit_pairs(level)
    pop = qpv_population(index)[q]
    known = np.isfinite(pop)
    w = np.where(known, pop, 0.0)
    total = np.bincount(u, weights=w, minlength=n_units)
    got = np.bincount(u, weights=w * reached[q], minlength=n_units)
    n_known = np.bincount(u, weights=known.astype(float), minlength=n_units)
    count = np.bincount(u, minlength=n_units)
    has = n_known > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(has & (total > 0), got / total, np.nan)
    return pd.DataFrame({
        "qpv_count": count.astype(np.int64),
        "qpv_unknown": (count - n_known).astype(np.int64),
        "qpv_population": np.where(has, total, np.nan),
        "qpv_population_reached": np.where(has, got, np.nan),
        "qpv_share_reached": share,
    })


def key_figures(selection: Selection, index: TerritoryIndex) -> KeyFigures:
    """Counts and sums of a selection; ``qpv_in_area`` counts QPV of the filter territories
    (all QPV when no territory filter).

    ``porteurs`` counts distinct porteur names (accent/case-insensitive);
    ``funding_initiatives_eur`` sums the selected initiatives' own matching lines,
    ``funding_all_eur`` every matching line (national ones included);
    ``territories_reached`` = communes + QPV of the area reached by a selected initiative."""
    p, mask, fmask = _parts(selection, index)
    org_keep = (p.org_pos >= 0) & (p.porteur_key >= 0)
    org_keep[org_keep] &= mask[p.org_pos[org_keep]]
    porteurs = len(np.unique(p.porteur_key[org_keep]))
    commune_reached = _reached(p, mask, "commune") & _area(index, selection.filters, "commune")
    qpv_area = _area(index, selection.filters, "qpv")
    qpv_reached = _reached(p, mask, "qpv") & qpv_area
    pop = qpv_population(index)
    known = np.isfinite(pop)
    return KeyFigures(
        qpv_population_reached=_known_sum(pop, qpv_reached),
        qpv_population_in_area=_known_sum(pop, qpv_area),
        qpv_population_unknown=int((qpv_area & ~known).sum()),
        initiatives=int(mask.sum()),
        porteurs=porteurs,
        funding_initiatives_eur=float(
            pd.to_numeric(selection.catalogue.funding["amount_eur"], errors="coerce").sum()
        ),
        funding_all_eur=float(p.f_amount[fmask].sum()),
        territories_reached=int(commune_reached.sum() + qpv_reached.sum()),
        qpv_reached=int(qpv_reached.sum()),
        qpv_in_area=int(qpv_area.sum()),
    )


def aggregate(selection: Selection, index: TerritoryIndex, level: str) -> pd.DataFrame:
    """One row per territory of ``level`` within the filter area:
    ``code, nom, population, initiatives, funding_eur, funding_per_inhabitant, qpv_count,
    qpv_population, qpv_population_reached, qpv_share_reached`` (the QPV columns as in
    :func:`qpv_population_by_unit`: NaN where no QPV population is known).
    Funding lines are counted in the territory that contains them; lines on a larger territory
    (e.g. a contrat de ville when aggregating by commune) are shared out by population.

    ``level`` is one of ``region, departement, epci, commune, qpv``. An initiative counts
    once in every unit one of its territories intersects (an EPCI-wide initiative counts in
    each of its communes). A funding line whose territory intersects units ``U`` gives each
    unit ``u`` the share ``population(u) / Σ population(U)`` of its amount (equal shares
    when no unit population is known; a unit of unknown population gets nothing when others
    are known): a line on a QPV or commune lies in one département and counts fully there;
    a contrat de ville line is split between its communes by population; at QPV level a line
    on a commune is split between the QPV of that commune. Only shares landing in the filter
    area are kept. ``funding_per_inhabitant`` is NaN where the population is unknown.
    """
    inc = index.incidence(level)
    p, mask, fmask = _parts(selection, index)
    area = _area(index, selection.filters, level)
    counts = _unit_counts(p, mask, level)
    funding = _unit_funding(p, fmask, level)
    units = inc.units
    pop = units["population"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_inh = np.where(pop > 0, funding / pop, np.nan)
    out = units.loc[area, ["code", "nom"]].reset_index(drop=True)
    out["population"] = pop[area]
    out["initiatives"] = counts[area]
    out["funding_eur"] = funding[area]
    out["funding_per_inhabitant"] = per_inh[area]
    qpop = qpv_population_by_unit(index, level, _reached(p, mask, "qpv"))
    for col in ("qpv_count", "qpv_population", "qpv_population_reached", "qpv_share_reached"):
        out[col] = qpop[col].to_numpy()[area]
    return out


def _labels(by: str) -> Vocabulary | None:
    return {
        "themes": THEMES,
        "publics": PUBLICS,
        "alliance_levels": ALLIANCE_LEVELS,
        "maturity": MATURITY,
        "funder_type": FUNDER_TYPES,
        "scheme": SCHEMES,
    }.get(by)


def _amounts(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").fillna(0.0).to_numpy(dtype=float)


def _group_distinct(values: np.ndarray, owners: np.ndarray, amounts: np.ndarray,
                    dedupe: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group rows by ``values`` (missing values dropped): (distinct values, number of distinct
    non-missing ``owners`` per value, sum of ``amounts`` per value). With ``dedupe``, a
    (value, owner) pair repeated counts its amount once."""
    vcodes, uniques = pd.factorize(values, use_na_sentinel=True)
    ocodes, owners_u = pd.factorize(owners, use_na_sentinel=True)
    keep = vcodes >= 0
    vcodes, ocodes, amounts = vcodes[keep], ocodes[keep], amounts[keep]
    n = len(uniques)
    pair = vcodes.astype(np.int64) * (len(owners_u) + 1) + (ocodes + 1)
    _, first = np.unique(pair, return_index=True)
    owned = first[ocodes[first] >= 0]
    counts = np.bincount(vcodes[owned], minlength=n)
    rows = first if dedupe else np.arange(len(vcodes))
    sums = np.bincount(vcodes[rows], weights=amounts[rows], minlength=n)
    return np.asarray(uniques, dtype=object), counts.astype(np.int64), sums.astype(float)


def distribution(selection: Selection, by: str) -> pd.DataFrame:
    """Counts (initiatives) or sums (funding) by ``by`` in ``themes``, ``maturity``,
    ``publics``, ``alliance_levels``, ``funder_type``, ``scheme``, ``year``: columns
    ``value, label, initiatives, funding_eur``.

    For initiative fields, ``funding_eur`` sums the initiatives' own selected lines (an
    initiative with two themes counts fully under each). For ``funder_type``, ``scheme`` and
    ``year`` (the line's first year), ``funding_eur`` sums every selected line and
    ``initiatives`` counts the distinct initiatives they fund. Rows follow vocabulary order
    (years ascending)."""
    columns = ["value", "label", "initiatives", "funding_eur"]
    if by in ("themes", "publics", "alliance_levels", "maturity"):
        ini = selection.catalogue.initiatives
        fund = selection.catalogue.funding
        fcodes, fids = pd.factorize(fund["initiative_id"].astype("str").to_numpy(dtype=object))
        per_init = np.bincount(fcodes, weights=_amounts(fund["amount_eur"]),
                               minlength=len(fids))
        ids = ini["id"].astype("str").to_numpy(dtype=object)
        # position -1 (an initiative without selected lines) reads the appended 0
        own = np.append(per_init, 0.0)[pd.Index(fids).get_indexer(ids)]
        lists = [[str(v)] if by == "maturity" else _to_list(v)
                 for v in ini[by].to_numpy(dtype=object)]
        lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        values = np.fromiter((x for v in lists for x in v), dtype=object,
                             count=int(lengths.sum()))
        uniques, counts, sums = _group_distinct(values, np.repeat(ids, lengths),
                                                np.repeat(own, lengths), dedupe=True)
    elif by in ("funder_type", "scheme", "year"):
        fund = selection.funding
        if by == "year":
            key = pd.to_numeric(fund["year_start"], errors="coerce").astype("Int64")
            values = key.astype(object).where(key.notna(), None).to_numpy(dtype=object)
        else:
            values = fund[by].astype("str").to_numpy(dtype=object)
        uniques, counts, sums = _group_distinct(
            values, fund["initiative_id"].to_numpy(dtype=object), _amounts(fund["amount_eur"]),
            dedupe=False)
    else:
        raise ValueError(f"Répartition inconnue : {by}")
    vocab = _labels(by)
    if vocab is not None:
        order = {c: i for i, c in enumerate(vocab.codes)}
        ranks = sorted(range(len(uniques)),
                       key=lambda i: (order.get(uniques[i], len(order)), str(uniques[i])))
        values_out: list[object] = [uniques[i] for i in ranks]
        labels = [vocab.label_of(v) for v in values_out]
    else:
        ranks = sorted(range(len(uniques)), key=lambda i: int(uniques[i]))
        values_out = [int(uniques[i]) for i in ranks]
        labels = [str(v) for v in values_out]
    return pd.DataFrame({
        "value": pd.Series(values_out, dtype="int64" if vocab is None else "str"),
        "label": pd.Series(labels, dtype="str"),
        "initiatives": counts[ranks].astype(np.int64),
        "funding_eur": sums[ranks].astype(float),
    }, columns=columns)


def coverage(selection: Selection, index: TerritoryIndex, level: str = "qpv") -> pd.DataFrame:
    """Territories of ``level`` (``qpv`` or ``commune`` = communes having a QPV) within the
    filter area that no selected initiative reaches, ranked by the people left out:
    ``code, nom, code_dep, population, qpv_count, qpv_population``.

    ``qpv_population`` is the known population of the territory's QPV (the QPV itself, or
    the QPV lying in the commune; NaN when unknown). QPV are ranked by population (unknown
    last) then name; communes by the population of their QPV (unknown last), then their own
    population, QPV count and name. ``qpv_count`` is 1 for a QPV, the number of QPV of a
    commune."""
    if level not in ("qpv", "commune"):
        raise ValueError(f"Niveau de couverture inconnu : {level}")
    p, mask, _ = _parts(selection, index)
    inc = index.incidence(level)
    keep = _area(index, selection.filters, level) & ~_reached(p, mask, level)
    units = inc.units
    qpop = qpv_population_by_unit(index, level, np.zeros(len(qpv_population(index)), bool))
    qpv_count = qpop["qpv_count"].to_numpy(dtype=np.int64)
    if level == "commune":
        keep &= qpv_count > 0
    out = pd.DataFrame({
        "code": units["code"].to_numpy(dtype=object)[keep],
        "nom": units["nom"].to_numpy(dtype=object)[keep],
        "code_dep": units["code_dep"].to_numpy(dtype=object)[keep],
        "population": units["population"].to_numpy(dtype=float)[keep],
        "qpv_count": qpv_count[keep],
        "qpv_population": qpop["qpv_population"].to_numpy(dtype=float)[keep],
    })
    out = out.assign(_q=out["qpv_population"].fillna(-1.0), _p=out["population"].fillna(-1.0))
    out = out.sort_values(["_q", "_p", "qpv_count", "nom"],
                          ascending=[False, False, False, True], kind="stable"
                          ).drop(columns=["_q", "_p"])
    for c in ("code", "nom", "code_dep"):
        out[c] = out[c].astype("str")
    return out.reset_index(drop=True)


@dataclass(frozen=True)
class CoverageSummary:
    """The people no selected initiative reaches in the filter area (Couverture page).

    ``qpv_unreached``: QPV of the area not reached (at ``level`` commune: QPV lying in a
    commune no initiative reaches); ``inhabitants_unreached``: their known inhabitants;
    ``unknown_unreached``: those of them of unknown population; ``inhabitants_area``: known
    inhabitants of all the area's QPV. Sums are None when no figure is known ("inconnue")."""

    level: str
    units_unreached: int
    qpv_unreached: int
    inhabitants_unreached: float | None
    unknown_unreached: int
    qpv_area: int
    inhabitants_area: float | None


def coverage_summary(selection: Selection, index: TerritoryIndex,
                     level: str = "qpv") -> CoverageSummary:
    """Totals of :func:`coverage`: each unreached QPV counted once (a QPV on two unreached
    communes is one QPV)."""
    if level not in ("qpv", "commune"):
        raise ValueError(f"Niveau de couverture inconnu : {level}")
    p, mask, _ = _parts(selection, index)
    pop = qpv_population(index)
    qpv_area = _area(index, selection.filters, "qpv")
    unit_keep = _area(index, selection.filters, level) & ~_reached(p, mask, level)
    q, u = index.qpv_unit_pairs(level)
    unreached = np.zeros(len(pop), dtype=bool)
    unreached[q[unit_keep[u]]] = True
    unreached &= qpv_area
    if level == "commune":
        has_qpv = np.zeros(len(unit_keep), dtype=bool)
        has_qpv[u] = True
        n_units = int((unit_keep & has_qpv).sum())
    else:
        n_units = int(unreached.sum())
    return CoverageSummary(
        level=level,
        units_unreached=n_units,
        qpv_unreached=int(unreached.sum()),
        inhabitants_unreached=_known_sum(pop, unreached),
        unknown_unreached=int((unreached & ~np.isfinite(pop)).sum()),
        qpv_area=int(qpv_area.sum()),
        inhabitants_area=_known_sum(pop, qpv_area),
    )


def theme_coverage(selection: Selection, index: TerritoryIndex, by: str = "themes"
                   ) -> pd.DataFrame:
    """For each value of ``by`` (``themes`` or ``publics``, vocabulary order), the share of
    the QPV inhabitants of the filter area reached by at least one selected initiative of
    that value: ``value, label, initiatives, qpv_reached, qpv_area, population_reached,
    population_area, share, population_unreached``.

    Populations are the known ones (QPV of unknown population are left out of both sums and
    counted in ``qpv_unknown``); ``share`` is NaN when no population is known in the area.
    Every vocabulary value is listed, including those no selected initiative has (share 0
    when the area's population is known)."""
    if by not in ("themes", "publics"):
        raise ValueError(f"Couverture par « {by} » inconnue (themes ou publics).")
    vocab = THEMES if by == "themes" else PUBLICS
    p, mask, _ = _parts(selection, index)
    pop = qpv_population(index)
    known = np.isfinite(pop)
    area = _area(index, selection.filters, "qpv")
    area_pop = float(pop[area & known].sum())
    has_known = bool((area & known).any())
    codes, matrix = p.lists[by]
    rows = []
    for value in vocab.codes:
        j = codes.get(value)
        m = mask & matrix[:, j] if j is not None else np.zeros(p.n, dtype=bool)
        reached = _reached(p, m, "qpv") & area if m.any() else np.zeros(len(pop), bool)
        got = float(pop[reached & known].sum())
        rows.append({
            "value": value, "label": vocab.label_of(value), "initiatives": int(m.sum()),
            "qpv_reached": int(reached.sum()), "qpv_area": int(area.sum()),
            "qpv_unknown": int((area & ~known).sum()),
            "population_reached": got if has_known else np.nan,
            "population_area": area_pop if has_known else np.nan,
            "share": got / area_pop if has_known and area_pop > 0 else np.nan,
            "population_unreached": area_pop - got if has_known else np.nan,
        })
    return pd.DataFrame(rows, columns=[
        "value", "label", "initiatives", "qpv_reached", "qpv_area", "qpv_unknown",
        "population_reached", "population_area", "share", "population_unreached"])


def overlaps(selection: Selection, index: TerritoryIndex, level: str = "qpv",
             minimum: int = 2) -> pd.DataFrame:
    """Territories reached by at least ``minimum`` selected initiatives:
    ``code, nom, population, initiatives, initiative_ids``.

    Limited to the filter area; most initiatives first, then name; ``initiative_ids`` is a
    sorted list of ids."""
    p, mask, _ = _parts(selection, index)
    inc = index.incidence(level)
    area = _area(index, selection.filters, level)
    keep = mask[p.it_init]
    ti, tt = p.it_init[keep], p.it_tid[keep]
    rep, units = inc.gather(tt)
    pairs = pd.DataFrame({"u": units, "i": ti[rep]}).drop_duplicates()
    pairs = pairs[area[pairs["u"].to_numpy()]]
    counts = pairs.groupby("u")["i"].agg(["size", list])
    counts = counts[counts["size"] >= minimum]
    u = counts.index.to_numpy(dtype=np.int64)
    out = pd.DataFrame({
        "code": inc.units["code"].to_numpy(dtype=object)[u],
        "nom": inc.units["nom"].to_numpy(dtype=object)[u],
        "population": inc.units["population"].to_numpy(dtype=float)[u],
        "initiatives": counts["size"].to_numpy(dtype=np.int64),
        "initiative_ids": [sorted(p.ids[np.asarray(v)].tolist()) for v in counts["list"]],
    }, columns=["code", "nom", "population", "initiatives", "initiative_ids"])
    out = out.sort_values(["initiatives", "nom"], ascending=[False, True], kind="stable")
    for c in ("code", "nom"):
        out[c] = out[c].astype("str")
    return out.reset_index(drop=True)


def select_each(catalogue: Catalogue, index: TerritoryIndex, filters: Filters,
                territories: Sequence[tuple[str, str]]) -> list[Selection]:
    """One :func:`select` per territory, under ``filters`` with their territory filter
    replaced by that territory (raises UnknownTerritoryError on an unknown one)."""
    return [select(catalogue, index, filters.replace(territories=(pair,)))
            for pair in territories]


def compare_territories(catalogue: Catalogue, index: TerritoryIndex, filters: Filters,
                        territories: list[tuple[str, str]]) -> pd.DataFrame:
    """:func:`compare_selections` of :func:`select_each` (2 to 4 territories)."""
    return compare_selections(select_each(catalogue, index, filters, territories), index)


def compare_selections(selections: Sequence[Selection], index: TerritoryIndex) -> pd.DataFrame:
    """Side-by-side figures of the territories of ``selections`` (from :func:`select_each`,
    one territory each): one row per territory with ``level, code, nom, population,
    initiatives, porteurs, funding_eur, funding_per_inhabitant, qpv_total, qpv_reached,
    qpv_population_reached, qpv_population_known``.

    ``funding_eur`` is the funding landing in the territory with the sharing rule of
    :func:`aggregate` (QPV level for a QPV, commune level otherwise); ``qpv_total`` counts
    the QPV of the territory, ``qpv_reached`` those a selected initiative reaches;
    ``qpv_population_reached`` sums the known populations of the reached QPV, and
    ``qpv_population_known`` counts the reached QPV whose population is known;
    ``qpv_population`` is the known population of all the territory's QPV (NaN when none is
    known), ``qpv_population_area_known`` how many of them have one, and
    ``funding_per_qpv_inhabitant`` = ``funding_eur / qpv_population`` (NaN when unknown)."""
    rows = []
    for sel in selections:
        ((level, code),) = sel.filters.territories
        figures = key_figures(sel, index)
        unit_level = "qpv" if level == "qpv" else "commune"
        agg = aggregate(sel, index, unit_level)
        if level == "qpv":
            funding = float(agg.loc[agg["code"] == code, "funding_eur"].sum())
        else:
            funding = float(agg["funding_eur"].sum())
        p, mask, _ = _parts(sel, index)
        qinc = index.incidence("qpv")
        in_area = _area(index, sel.filters, "qpv")
        reached = _reached(p, mask, "qpv") & in_area
        all_pop = qinc.units["population"].to_numpy(dtype=float)
        reached_pop = all_pop[reached]
        area_qpv_pop = _known_sum(all_pop, in_area)
        pop = index.population(level, code)
        rows.append({
            "level": level,
            "code": code,
            "nom": index.name(level, code),
            "population": np.nan if pop is None else pop,
            "initiatives": figures.initiatives,
            "porteurs": figures.porteurs,
            "funding_eur": funding,
            "funding_per_inhabitant": funding / pop if pop else np.nan,
            "qpv_total": int(in_area.sum()),
            "qpv_reached": int(reached.sum()),
            "qpv_population_reached": float(np.nansum(reached_pop)),
            "qpv_population_known": int(np.isfinite(reached_pop).sum()),
            "qpv_population": np.nan if area_qpv_pop is None else area_qpv_pop,
            "qpv_population_area_known": int(np.isfinite(all_pop[in_area]).sum()),
            "funding_per_qpv_inhabitant": (funding / area_qpv_pop if area_qpv_pop
                                           else np.nan),
        })
    return pd.DataFrame(rows, columns=[
        "level", "code", "nom", "population", "initiatives", "porteurs", "funding_eur",
        "funding_per_inhabitant", "qpv_total", "qpv_reached", "qpv_population_reached",
        "qpv_population_known", "qpv_population", "qpv_population_area_known",
        "funding_per_qpv_inhabitant",
    ])


def _fmt_eur(amount: float) -> str:
    return f"{amount:,.0f} €".replace(",", "\u202f")


def _fmt_date(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    try:
        if pd.isna(value):  # type: ignore[arg-type]
            return ""
    except (TypeError, ValueError):
        pass
    try:
        return pd.Timestamp(value).strftime("%d/%m/%Y")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)


def _text(value: object) -> str:
    if value is None:
        return ""
    try:
        if pd.isna(value):  # type: ignore[arg-type]
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)


#: Row labels of :func:`compare_initiatives`, in order.
COMPARE_FIELDS: tuple[str, ...] = (
    "Titre",
    "Résumé",
    "Porteurs",
    "Partenaires",
    "Territoires",
    "Échelle",
    "Dates",
    "Thèmes",
    "Publics",
    "Niveau d'alliance",
    "Maturité",
    "Financements (total)",
    "Financeurs",
    "Indicateurs",
    "Objectifs",
    "Actions",
    "Résultats",
)


def compare_initiatives(catalogue: Catalogue, ids: list[str]) -> pd.DataFrame:
    """Field-by-field comparison of 2 or 3 initiatives (rows = fields, columns = titles).

    Rows are :data:`COMPARE_FIELDS` (French labels); values are readable French strings
    (vocabulary labels, "1 500 €"). A column is named by the title, suffixed with the id when
    two titles are equal. Unknown ids are left out."""
    ini = catalogue.initiatives.set_index(catalogue.initiatives["id"].astype("str"))
    columns: dict[str, list[str]] = {}
    for ident in ids:
        if ident not in ini.index:
            continue
        row = ini.loc[ident]
        if isinstance(row, pd.DataFrame):
            row = row.iloc[0]
        orgs = catalogue.organisations[
            catalogue.organisations["initiative_id"].astype("str") == ident
        ]
        terr = catalogue.territories[catalogue.territories["initiative_id"].astype("str") == ident]
        fund = catalogue.funding[catalogue.funding["initiative_id"].astype("str") == ident]
        ind = catalogue.indicators[catalogue.indicators["initiative_id"].astype("str") == ident]

        def names(role: str, orgs: pd.DataFrame = orgs) -> str:
            sub = orgs[orgs["role"].astype("str") == role]
            return ", ".join(
                f"{n} ({ORG_TYPES.label_of(str(t))})" for n, t in zip(sub["name"], sub["type"],
                                                                       strict=True)
            )

        start, end = _fmt_date(row.get("start_date")), _fmt_date(row.get("end_date"))
        dates = f"{start} – {end}" if start and end else (
            f"depuis le {start}" if start else (f"jusqu'au {end}" if end else ""))
        amounts = pd.to_numeric(fund["amount_eur"], errors="coerce").fillna(0.0)
        indicators = "; ".join(
            f"{lbl} : {_text(v)}{(' ' + _text(u)) if _text(u) else ''}"
            f"{(' (' + _text(y) + ')') if _text(y) else ''}"
            for lbl, v, u, y in zip(ind["label"], ind["value"], ind["unit"], ind["year"],
                                    strict=True)
        )
        values = {
            "Titre": _text(row.get("title")),
            "Résumé": _text(row.get("summary")),
            "Porteurs": names("porteur"),
            "Partenaires": names("partenaire"),
            "Territoires": ", ".join(
                f"{TERRITORY_LEVELS.label_of(str(lv))} {c}"
                for lv, c in zip(terr["level"], terr["code"], strict=True)
            ),
            "Échelle": SCALES.label_of(_text(row.get("scale"))),
            "Dates": dates,
            "Thèmes": ", ".join(THEMES.label_of(t) for t in _to_list(row.get("themes"))),
            "Publics": ", ".join(PUBLICS.label_of(t) for t in _to_list(row.get("publics"))),
            "Niveau d'alliance": ", ".join(
                ALLIANCE_LEVELS.label_of(t) for t in _to_list(row.get("alliance_levels"))
            ),
            "Maturité": MATURITY.label_of(_text(row.get("maturity"))),
            "Financements (total)": _fmt_eur(float(amounts.sum())) if len(fund) else "",
            "Financeurs": ", ".join(dict.fromkeys(
                f"{f} ({FUNDER_TYPES.label_of(str(t))})"
                for f, t in zip(fund["funder"], fund["funder_type"], strict=True)
            )),
            "Indicateurs": indicators,
            "Objectifs": _text(row.get("objectives")),
            "Actions": _text(row.get("actions")),
            "Résultats": _text(row.get("results")),
        }
        title = values["Titre"] or ident
        if title in columns:
            title = f"{title} ({ident})"
        columns[title] = [values[f] for f in COMPARE_FIELDS]
    return pd.DataFrame(columns, index=pd.Index(list(COMPARE_FIELDS), name="Champ"), dtype="str")


def related_initiatives(catalogue: Catalogue, index: TerritoryIndex, initiative_id: str,
                        limit: int = 5) -> pd.DataFrame:
    """Initiatives sharing themes with ``initiative_id`` in comparable territories (same
    level or same département first), best first: ``id, title, shared_themes, score``.

    ``score`` = number of shared themes + 1 if a territory is in the same département
    + 0.5 if a territory has the same level; ``shared_themes`` lists the shared themes' French
    labels. Ties are broken by title. Unknown id: empty result."""
    columns = ["id", "title", "shared_themes", "score"]
    p = prepare(catalogue, index)
    where = np.flatnonzero(p.ids == initiative_id)
    if len(where) == 0:
        return pd.DataFrame(columns=columns)
    me = int(where[0])
    codes, matrix = p.lists["themes"]
    mine = np.flatnonzero(matrix[me]) if codes else np.empty(0, dtype=np.int64)
    shared = matrix[:, mine].sum(axis=1) if len(mine) else np.zeros(p.n)
    candidates = np.flatnonzero(shared > 0)
    candidates = candidates[candidates != me]
    if len(candidates) == 0:
        return pd.DataFrame(columns=columns)
    levels = index.table["level"].to_numpy(dtype=object)
    deps = index.table["code_dep"].astype("str").fillna("").to_numpy(dtype=object)
    my_tids = p.it_tid[p.it_init == me]
    my_levels, my_deps = set(levels[my_tids]), set(deps[my_tids]) - {""}
    same_level = np.zeros(p.n, dtype=bool)
    same_dep = np.zeros(p.n, dtype=bool)
    same_level[p.it_init[np.isin(levels[p.it_tid], list(my_levels))]] = True
    same_dep[p.it_init[np.isin(deps[p.it_tid], list(my_deps))]] = True
    score = shared + 1.0 * same_dep + 0.5 * same_level
    code_list = list(codes)
    titles = catalogue.initiatives["title"].astype("str").to_numpy(dtype=object)
    out = pd.DataFrame({
        "id": p.ids[candidates],
        "title": titles[candidates],
        "shared_themes": [
            ", ".join(THEMES.label_of(code_list[j]) for j in mine if matrix[i, j])
            for i in candidates
        ],
        "score": score[candidates].astype(float),
    })
    out = out.sort_values(["score", "title"], ascending=[False, True], kind="stable")
    return out.head(limit).reset_index(drop=True)
