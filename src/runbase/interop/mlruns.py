"""What an MLflow file store (an ``mlruns`` directory) is, for the importer and the
exporter alike: a directory holding at least one experiment directory, i.e. a
``<experiment id>/meta.yaml`` (not through a symlink) that parses as YAML and names the
experiment's ``experiment_id`` and ``name``, as MLflow's ``FileStore`` writes it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

MAX_META = 1 << 20  # an experiment's meta.yaml is a few hundred bytes: more is not one


def experiment_meta(d: Path) -> dict[str, Any] | None:
    """The experiment directory ``d``'s meta.yaml, or None when ``d`` is not one."""
    meta = d / "meta.yaml"
    if d.is_symlink() or meta.is_symlink() or not meta.is_file():
        return None
    try:
        if meta.stat().st_size > MAX_META:
            return None
        data = yaml.safe_load(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    ok = isinstance(data, dict) and "experiment_id" in data and "name" in data
    return data if ok else None


def is_mlruns(root: Path) -> bool:
    """Whether ``root`` is an MLflow file store (one experiment directory at least)."""
    if not root.is_dir():
        return False
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return False
    return any(experiment_meta(root / name) is not None for name in names)
