"""Names of the per-run files in the spool directory (shared, import-light)."""

LOG_FILES = {"output": "output.log", "stderr": "stderr.log"}
CELLS_FILE = "cells.jsonl"  # the cells a notebook run executed (runbase.records.notebook)
