"""lightwork's benchmarks: ``python -m bench`` (see docs/benchmarks.md for method and figures).

Not a library and not tests: nothing here asserts a time. Each part compares contenders
measured in the same run, so that ratios, not raw figures, carry from machine to machine.
"""
