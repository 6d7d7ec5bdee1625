"""CoreC: a shared crypto trading pool for a small group.

The package is layered (DESIGN.md): ``core`` ← ``messages`` ← ``exchanges`` ←
``plugins`` ← ``cli``. Imports run one way only; ``import-linter`` checks it in CI.
"""

__version__ = "0.1.0"
