"""Everything that reads or writes run records: the only layer that speaks SQL."""
