"""Config overrides, the nanoGPT way (a "poor man's configurator"). Run as

    exec(open("configurator.py").read())

from train.py, after its defaults are set. Each command-line argument is either a
config file (a Python file executed as is, so it may set any global) or ``--key=value``,
which must name an existing global and keeps its type (``literal_eval`` of the value,
else the string)."""

import sys
from ast import literal_eval

for arg in sys.argv[1:]:
    if "=" not in arg:
        # a config file
        assert not arg.startswith("--"), arg
        config_file = arg
        print(f"Overriding config with {config_file}:")
        with open(config_file) as f:
            print(f.read())
        exec(open(config_file).read())  # noqa: SIM115 - the pattern under test
    else:
        # --key=value
        assert arg.startswith("--"), arg
        key, val = arg.split("=")
        key = key[2:]
        if key not in globals():
            raise ValueError(f"Unknown config key: {key}")
        try:
            attempt = literal_eval(val)
        except (SyntaxError, ValueError):
            attempt = val
        assert type(attempt) == type(globals()[key]), f"{key}: {attempt!r}"  # noqa: E721
        print(f"Overriding: {key} = {attempt}")
        globals()[key] = attempt
