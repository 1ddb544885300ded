"""Analysis: filters, aggregates and coverage (queries), the tables and texts pages show (views),
maps, French formatting."""
