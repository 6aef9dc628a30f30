"""Object store backends by URL: a local directory or an S3-compatible bucket.

>>> open_objects("/data/.runbase/objects")                 # doctest: +SKIP
<runbase.store.objects.LocalObjects ...>
>>> open_objects("s3://team-bucket/runbase")               # doctest: +SKIP
S3Objects('s3://team-bucket/runbase')

The interface both offer is runbase.store.protocol.Objects.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from runbase.errors import StoreError
from runbase.store.objects import LocalObjects
from runbase.store.protocol import Objects
from runbase.store.s3 import S3Objects

_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")


def open_objects(url_or_path: str | os.PathLike[str], **options: Any) -> Objects:
    """LocalObjects for a path (or ``file://`` URL), S3Objects for ``s3://bucket/prefix``.

    ``options`` go to the backend (``endpoint_url=``, ``tmp_dir=``, ...). S3 credentials
    come from the usual AWS variables; the endpoint also from ``$RUNBASE_S3_ENDPOINT_URL``.
    """
    target = os.fspath(url_or_path)
    if target.startswith("s3://"):
        return S3Objects(target, **options)
    if target.startswith("file://"):
        target = target[7:]
    elif _SCHEME.match(target):
        raise StoreError(
            f"unsupported object store URL {target!r}: use a path or s3://bucket[/prefix]"
        )
    root = Path(target).expanduser().absolute()
    tmp = options.pop("tmp_dir", None)
    if options:
        raise TypeError(f"unexpected options for a local object store: {sorted(options)}")
    return LocalObjects(root, Path(tmp) if tmp is not None else None)
