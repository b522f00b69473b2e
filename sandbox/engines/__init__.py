"""Engines: the ways a job becomes a running, isolated interpreter."""
