"""Territoires: tableau de bord des alliances éducatives (QPV, Cités éducatives)."""

__version__ = "0.1.0"
