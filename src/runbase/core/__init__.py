"""Stdlib-only pieces every layer shares: ids, statuses, the query language, the spool format."""
