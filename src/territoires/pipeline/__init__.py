"""Data pipeline: official sources, the built reference layers, the territory index, national
funding lines."""
