"""The runbase team server: PostgreSQL (or SQLite) for metadata, S3 (or a directory)
for bytes, accounts and tokens, projects with roles, push/pull and live publishing
(docs/server.md). Needs the ``ui`` extra (and ``postgres``/``s3`` for those backends)."""
