"""Framework integrations, enabled automatically in tracked Python processes.

Under ``runbase run`` (and after ``runbase.init()``), each entry of :data:`AUTO` is
armed with an import hook: when the named module is first imported (or at once, if
it already is), the ``"module:function"`` target is imported and called with that
module. Nothing is imported eagerly, so an unused integration costs nothing.

Opt out with ``runbase run --no-integrations`` or ``RUNBASE_INTEGRATIONS=0`` (all), or
``RUNBASE_INTEGRATIONS=-keras,-lightning`` (some, by name: the part of the target's
module after ``runbase.integrations.``). An integration that fails warns once and
leaves the framework alone: tracking never breaks training.
"""

from __future__ import annotations

# The registry and its switch live in the tracking layer, which arms them when a run
# starts (runbase.tracking.autohooks); they are this package's public face.
from runbase.tracking.autohooks import AUTO, ENV_VAR, install_auto, name_of

__all__ = ["AUTO", "ENV_VAR", "install_auto", "name_of"]
