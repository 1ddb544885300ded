"""Territory index: names, hierarchy and footprints of every territory in the layers.

Built once from :class:`~territoires.layers.Layers` (pure, no I/O). A territory is a pair
``(level, code)`` with ``level`` in the ``territory_level`` vocabulary.

Footprint semantics (used for filters, "reached", coverage): every territory is a set of
communes, plus, for a QPV, the QPV code itself. Two territories intersect when their commune
sets intersect, except that a QPV intersects another QPV only if it is the same one.
Régions, départements, EPCI and contrats de ville expand to their communes; a cité éducative
to its communes; a municipal arrondissement (Paris, Lyon, Marseille) belongs to its parent
commune's footprint as well as its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from territoires.layers import Layers


@dataclass(frozen=True)
class Footprint:
    """Communes covered by a territory; ``qpvs`` is set only for QPV-level territories."""

    communes: frozenset[str]
    qpvs: frozenset[str] | None = None


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

    @classmethod
    def from_layers(cls, layers: Layers) -> TerritoryIndex:
        """Build the index from the reference layers."""
        raise NotImplementedError

    def exists(self, level: str, code: str) -> bool:
        """Whether ``(level, code)`` is a known territory."""
        raise NotImplementedError

    def name(self, level: str, code: str) -> str:
        """Official name (the code itself if unknown)."""
        raise NotImplementedError

    def label(self, level: str, code: str) -> str:
        """Display label "Nom (code) — Niveau"."""
        raise NotImplementedError

    def population(self, level: str, code: str) -> float | None:
        """Population (None where unknown, e.g. most QPV offline)."""
        raise NotImplementedError

    def footprint(self, level: str, code: str) -> Footprint:
        """Footprint of a territory (raises UnknownTerritoryError if unknown)."""
        raise NotImplementedError

    def search(self, text: str, limit: int = 20) -> pd.DataFrame:
        """Territories whose name or code matches ``text`` (accent- and case-insensitive,
        prefix matches on words first), at most ``limit`` rows of :attr:`table`."""
        raise NotImplementedError

    def qpv_in(self, level: str, code: str) -> list[str]:
        """QPV codes intersecting the territory."""
        raise NotImplementedError

    def members(self, level: str, code: str, member_level: str) -> list[str]:
        """Codes of ``member_level`` territories intersecting ``(level, code)`` (e.g. the
        communes of a département, the EPCI of a région)."""
        raise NotImplementedError
