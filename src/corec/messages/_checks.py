"""Shared invariant checks for payload ``__post_init__`` methods."""

from __future__ import annotations

from decimal import Decimal


def require_positive(name: str, value: Decimal | None) -> None:
    """Raise ``ValueError`` unless ``value`` is None or a finite Decimal > 0."""
    if value is not None and (not value.is_finite() or value <= 0):
        raise ValueError(f"{name} must be a positive number, got {value}")


def require_non_negative(name: str, value: Decimal | None) -> None:
    """Raise ``ValueError`` unless ``value`` is None or a finite Decimal >= 0."""
    if value is not None and (not value.is_finite() or value < 0):
        raise ValueError(f"{name} must be >= 0, got {value}")


def require_finite(name: str, value: Decimal | None) -> None:
    """Raise ``ValueError`` unless ``value`` is None or finite."""
    if value is not None and not value.is_finite():
        raise ValueError(f"{name} must be a finite number, got {value}")


def require_text(name: str, value: str) -> None:
    """Raise ``ValueError`` if ``value`` is empty."""
    if not value:
        raise ValueError(f"{name} must not be empty")
