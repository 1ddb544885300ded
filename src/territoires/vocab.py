"""Controlled vocabularies of the catalogue, in one place.

Each vocabulary maps a stable ASCII code (stored in the database and exchange files) to a
French label (shown to users). Imports accept either the code or the label, ignoring case and
accents; anything else is refused with the list of valid values.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field


def fold(text: str) -> str:
    """Lower-case, accent-free, whitespace-collapsed form of ``text`` for matching."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().replace("’", "'").split())


@dataclass(frozen=True)
class Vocabulary:
    """A closed list of values: ``codes`` map to French ``labels``."""

    name: str
    label: str
    items: dict[str, str]
    _lookup: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lookup: dict[str, str] = {}
        for code, label in self.items.items():
            lookup[fold(code)] = code
            lookup[fold(label)] = code
        object.__setattr__(self, "_lookup", lookup)

    @property
    def codes(self) -> list[str]:
        """Codes in display order."""
        return list(self.items)

    def label_of(self, code: str) -> str:
        """French label of ``code`` (the code itself if unknown)."""
        return self.items.get(code, code)

    def normalize(self, value: str) -> str | None:
        """Code for ``value`` (a code or a label, any case/accents), or None if unknown."""
        return self._lookup.get(fold(value))

    def valid_values_text(self) -> str:
        """The valid values as a French sentence fragment, for error messages."""
        return ", ".join(f"{c} ({lbl})" for c, lbl in self.items.items())


TERRITORY_LEVELS = Vocabulary(
    "territory_level",
    "Niveau de territoire",
    {
        "region": "Région",
        "departement": "Département",
        "epci": "EPCI",
        "commune": "Commune",
        "qpv": "QPV",
        "contrat_ville": "Contrat de ville",
        "cite_educative": "Cité éducative",
    },
)

SCALES = Vocabulary(
    "scale",
    "Échelle",
    {
        "etablissement": "Établissement",
        "quartier": "Quartier",
        "commune": "Commune",
        "intercommunal": "Intercommunal",
        "departemental": "Départemental",
        "regional": "Régional",
        "national": "National",
    },
)

THEMES = Vocabulary(
    "theme",
    "Thème",
    {
        "continuite_educative": "Continuité éducative et transitions",
        "orientation": "Orientation et ambition",
        "decrochage": "Décrochage et persévérance scolaire",
        "parentalite": "Parentalité et lien école-familles",
        "petite_enfance": "Petite enfance",
        "plurilinguisme": "Plurilinguisme et interculturalité",
        "egalite_filles_garcons": "Égalité filles-garçons",
        "competences_psychosociales": "Compétences psychosociales",
        "sante_prevention": "Santé et prévention",
        "mobilite_europeenne": "Mobilité européenne",
        "culture": "Culture",
        "sport": "Sport",
        "sciences": "Sciences",
        "formation_interprofessionnelle": "Formation interprofessionnelle",
        "coordination_territoriale": "Coordination territoriale",
    },
)

#: Politique de la ville headings (contrats de ville, "pilier cohésion sociale") each theme
#: falls under. A theme may map to several headings; the mapping is indicative.
POLITIQUE_VILLE_THEMES: dict[str, list[str]] = {
    "continuite_educative": ["1.1 Éducation"],
    "orientation": ["1.1 Éducation", "2. Emploi et développement économique"],
    "decrochage": ["1.1 Éducation"],
    "parentalite": ["1.1 Éducation", "1.3 Parentalité et droits sociaux"],
    "petite_enfance": ["1.1 Éducation", "1.3 Parentalité et droits sociaux"],
    "plurilinguisme": ["1.1 Éducation", "1.5 Lien social, citoyenneté et participation"],
    "egalite_filles_garcons": ["1.1 Éducation", "Axe transversal égalité femmes-hommes"],
    "competences_psychosociales": ["1.1 Éducation", "1.2 Santé"],
    "sante_prevention": ["1.2 Santé"],
    "mobilite_europeenne": ["1.1 Éducation"],
    "culture": ["1.4 Culture et expression artistique"],
    "sport": ["1.6 Sport"],
    "sciences": ["1.1 Éducation"],
    "formation_interprofessionnelle": ["4. Pilotage, ingénierie et ressources"],
    "coordination_territoriale": ["4. Pilotage, ingénierie et ressources"],
}

PUBLICS = Vocabulary(
    "public",
    "Public",
    {
        "0-3_ans": "0-3 ans",
        "maternelle": "Maternelle",
        "elementaire": "Élémentaire",
        "college": "Collège",
        "lycee": "Lycée",
        "16-25_ans": "16-25 ans",
        "parents": "Parents",
        "professionnels": "Professionnels",
    },
)

ALLIANCE_LEVELS = Vocabulary(
    "alliance_level",
    "Niveau d'alliance",
    {
        "micro": "Micro (autour de l'enfant et de sa famille)",
        "meso": "Méso (établissement, quartier, projet partagé)",
        "macro": "Macro (gouvernance territoriale)",
    },
)

MATURITY = Vocabulary(
    "maturity",
    "Maturité",
    {
        "emergence": "Émergence",
        "experimentation": "Expérimentation",
        "deploiement": "Déploiement",
        "essaimage": "Essaimage / pérennisation",
        "arretee": "Arrêtée",
    },
)

ORG_TYPES = Vocabulary(
    "org_type",
    "Type de structure",
    {
        "collectivite": "Collectivité",
        "education_nationale": "Éducation nationale",
        "association": "Association",
        "etablissement_scolaire": "Établissement scolaire",
        "universite": "Université",
        "entreprise_fondation": "Entreprise / fondation",
        "etat_agence": "État / agence",
        "autre": "Autre",
    },
)

ORG_ROLES = Vocabulary(
    "org_role",
    "Rôle",
    {"porteur": "Porteur", "partenaire": "Partenaire"},
)

FUNDER_TYPES = Vocabulary(
    "funder_type",
    "Type de financeur",
    {
        "etat": "État",
        "collectivite": "Collectivité",
        "europe": "Europe",
        "caf": "CAF",
        "fondation_privee": "Fondation privée",
        "entreprise": "Entreprise",
        "autre": "Autre",
    },
)

SCHEMES = Vocabulary(
    "scheme",
    "Dispositif",
    {
        "cite_educative": "Cité éducative",
        "adultes_relais": "Adultes-relais",
        "fonjep": "FONJEP",
        "erasmus_plus": "Erasmus+",
        "mildeca": "MILDECA",
        "politique_ville": "Politique de la ville (crédits spécifiques)",
        "reussite_educative": "Programme de réussite éducative",
        "fse_plus": "FSE+",
        "caf_parentalite": "CAF (REAAP, parentalité)",
        "droit_commun": "Droit commun (budget propre)",
        "mecenat": "Mécénat",
        "autre": "Autre",
    },
)

VOCABULARIES: dict[str, Vocabulary] = {
    v.name: v
    for v in (
        TERRITORY_LEVELS,
        SCALES,
        THEMES,
        PUBLICS,
        ALLIANCE_LEVELS,
        MATURITY,
        ORG_TYPES,
        ORG_ROLES,
        FUNDER_TYPES,
        SCHEMES,
    )
}
