"""Python the app runs inside a sandbox (as a job's code), kept as real, linted files."""
