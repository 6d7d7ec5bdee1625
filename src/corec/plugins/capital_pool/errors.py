"""Refusals of pool commands. All are :class:`~corec.core.errors.InvalidInput`: nothing
was written, and the message says what was wrong."""

from __future__ import annotations

from corec.core.errors import InvalidInput


class UnknownMember(InvalidInput):
    """The member is not registered in the pool."""


class BelowMinimum(InvalidInput):
    """A contribution is below ``min_contribution_usd``."""


class InvalidAmount(InvalidInput):
    """An amount is not a positive number of whole cents."""


class InsufficientEquity(InvalidInput):
    """A withdrawal asks for more than the member's equity."""


class InsufficientFreeCash(InvalidInput):
    """A withdrawal asks for more than the pool's free (unallocated) cash."""


class Insolvent(InvalidInput):
    """NAV is not positive while units are outstanding; no units can be priced."""


class ConflictingReplay(InvalidInput):
    """A command id already recorded is sent again with different content."""


class UnknownWithdrawal(InvalidInput):
    """No queued withdrawal has this id."""


class WithdrawalAlreadyPaid(InvalidInput):
    """A queued withdrawal was paid: it can no longer be cancelled."""


class WithdrawalWasCancelled(InvalidInput):
    """A withdrawal id that was cancelled is sent again."""
