"""PoseNAS Lab core library: search spaces, models, data, training, evaluation.

Nothing in this package imports widgets, plotting or IPython (tests/test_imports.py keeps it so).
"""

__version__ = "0.1.0"
