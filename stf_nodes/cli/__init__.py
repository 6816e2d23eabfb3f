"""The `stf` command line."""
