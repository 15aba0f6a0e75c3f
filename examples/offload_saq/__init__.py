"""lightwork with SAQ: a Starlette app offloads CPU-heavy jobs to a SAQ worker (see README.md)."""
