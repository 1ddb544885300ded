"""The catalogue: model and vocabularies, storage, reading, validation and export, imports, roles,
moderation, error reports."""
