import os
import sys

# `python -m runbase` puts the current directory first on sys.path: a user's train.py
# next to a file named like a stdlib module (tty.py, pty.py) must not shadow ours.
if sys.path and sys.path[0] in ("", os.getcwd()):
    sys.path.pop(0)

from runbase.cli import main  # noqa: E402

main()
