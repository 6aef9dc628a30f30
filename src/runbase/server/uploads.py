"""An upload streamed into the object store: the one loop behind ``PUT .../objects/{oid}``
(``runbase push``) and MLflow's artifact uploads. Bytes are hashed as they arrive and
never held whole; more than MAX_OBJECT_BYTES is refused mid-stream."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from runbase.errors import TooLarge
from runbase.server.service import MAX_OBJECT_BYTES


async def receive_object(request: Request, writer: Any) -> Any:
    """Stream the request's body into ``writer`` (an object store writer) and close it:
    stored when closing succeeds (ObjectIdMismatch when the bytes are not the id it
    expects); nothing is stored when the body is too large or the client goes away."""
    try:
        async for chunk in request.stream():
            if chunk:
                writer.write(chunk)
                if writer.size > MAX_OBJECT_BYTES:
                    raise TooLarge(f"an object is at most {MAX_OBJECT_BYTES} bytes")
    except BaseException as e:
        await run_in_threadpool(writer.__exit__, type(e), e, None)
        raise
    await run_in_threadpool(writer.__exit__, None, None, None)
    return writer
