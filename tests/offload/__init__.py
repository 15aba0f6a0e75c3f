"""Tests of the offload bridge and its backends, against real engines."""
