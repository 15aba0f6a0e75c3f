"""Tests of the core: tasks, handles, limits, deadlines, step timing, stats, shutdown."""
