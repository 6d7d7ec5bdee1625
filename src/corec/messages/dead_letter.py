"""``dead_letter``: events a handler could not process (see :class:`DeadLetter`)."""

from corec.core.notices import DeadLetter

__all__ = ["DeadLetter"]
