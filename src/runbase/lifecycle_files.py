"""Names of the per-run log files in the spool directory (shared, import-light)."""

LOG_FILES = {"output": "output.log", "stderr": "stderr.log"}
