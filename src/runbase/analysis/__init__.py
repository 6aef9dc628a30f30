"""Pure computations on run records: diff, parameter importance, comparisons."""
