"""user_management's configuration section."""

from __future__ import annotations

from pydantic import Field

from corec.core.plugin import PluginConfig

DAY_S = 86_400


class UserManagementConfig(PluginConfig):
    """user_management settings. Durations are whole seconds (``*_s``) or days.

    Fields:
        initial_admin: on a start with no user at all, create the user ``admin`` (role
            admin) with a random password written to ``<data_dir>/initial-admin-password``
            (mode 0600); only that path is logged.
        access_token_ttl_s: how long a login's access token works (default 15 min).
        refresh_token_ttl_s: how long a login's refresh token works (default 7 days);
            each refresh issues a new one and revokes the old.
        api_token_ttl_days: default lifetime of ``corec users token`` (``--ttl-days``
            overrides it; 0 there means never expires).
        auth_cache_ttl_s: how long a successful token lookup is remembered in memory
            (0: never). A token revoked elsewhere (the CLI) stops working within this
            time; one revoked through the node (logout, refresh) at once.
        login_max_failures: failed logins allowed per user name and per client address
            within ``login_window_s``; further attempts (even with the right password)
            are refused as ``unavailable`` until the oldest failure leaves the window.
        login_window_s: the sliding window of the failed-login limiter.
        min_password_chars: the shortest password accepted.
        poll_interval_s: how often the node looks for users changed by the CLI, to
            publish :class:`~corec.messages.user_data.UserChanged` on ``system``.
    """

    initial_admin: bool = True
    access_token_ttl_s: int = Field(default=900, gt=0, le=DAY_S)
    refresh_token_ttl_s: int = Field(default=7 * DAY_S, gt=0, le=365 * DAY_S)
    api_token_ttl_days: int = Field(default=90, gt=0, le=3650)
    auth_cache_ttl_s: int = Field(default=5, ge=0, le=60)
    login_max_failures: int = Field(default=5, gt=0, le=1000)
    login_window_s: int = Field(default=60, gt=0, le=DAY_S)
    min_password_chars: int = Field(default=12, ge=8, le=1024)
    poll_interval_s: int = Field(default=5, gt=0, le=3600)
