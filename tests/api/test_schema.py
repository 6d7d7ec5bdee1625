"""Property-based: every operation of the live OpenAPI document, fed generated valid and
invalid inputs (schemathesis), never answers 5xx, answers only statuses it documents,
and its bodies match the documented schemas.

The node is real (SQLite, after the replay), so the routes reach the plugins. Only
``POST /api/v1/auth/logout`` is left out: it would revoke the admin token the run uses.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Stack

EXCLUDED = {("POST", "/api/v1/auth/logout")}
MAX_EXAMPLES = 15


def not_a_server_error_but_rate_limits(ctx: Any, response: Any, case: Any) -> bool | None:
    """``not_a_server_error``, except the failed-login limiter's documented refusal: 503
    with ``Retry-After`` and code ``unavailable`` (the contract's choice of status)."""
    if response.status_code == 503 and "retry-after" in {k.lower() for k in response.headers}:
        body = response.json()
        assert body["code"] == "unavailable", body
        assert int(_header(response.headers, "retry-after")) > 0
        return None
    return not_a_server_error(ctx, response, case)  # type: ignore[no-any-return]


def _header(headers: Any, name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value[0] if isinstance(value, list) else str(value)
    raise KeyError(name)


CHECKS = [not_a_server_error_but_rate_limits, response_schema_conformance, status_code_conformance]


@dataclass
class Run:
    """What the run did: cases sent per operation, and each failure found."""

    cases: dict[str, int] = field(default_factory=dict)
    statuses: dict[tuple[str, int], int] = field(default_factory=dict)
    """Responses by (generation mode, status)."""
    failures: list[str] = field(default_factory=list)


def fuzz(base_url: str, token: str) -> Run:
    """Run every operation's positive and negative cases against ``base_url`` (blocking:
    call it in a thread, the server runs in the test's event loop)."""
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", timeout=10)
    session = requests.Session()
    run = Run()
    operations = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in EXCLUDED:
            operations.append(operation)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{operation.label} [{mode.value}]"
            run.cases[label] = 0
            try:
                _fuzz_one(operation, mode, label, base_url, session, headers, run)
            except Unsatisfiable:
                # no parameter and no body (``/health``, ``/metrics``): nothing to make invalid
                assert mode is GenerationMode.NEGATIVE, label
                del run.cases[label]
            except (Exception, BaseExceptionGroup) as exc:  # every failure is reported below
                run.failures.append(f"{label}: {type(exc).__name__}: {str(exc)[:3000]}")
    session.close()
    return run


def _fuzz_one(
    operation: Any,
    mode: GenerationMode,
    label: str,
    base_url: str,
    session: requests.Session,
    headers: dict[str, str],
    run: Run,
) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        run.cases[label] += 1
        response = case.call_and_validate(
            base_url=base_url, session=session, headers=headers, checks=CHECKS
        )
        key = (mode.value, response.status_code)
        run.statuses[key] = run.statuses.get(key, 0) + 1

    check()


async def test_every_operation_conforms_and_never_fails(sqlite_stack: Stack) -> None:
    await sqlite_stack.wait_replayed()
    run = await asyncio.to_thread(fuzz, sqlite_stack.base_url, sqlite_stack.tokens["root"])

    print("statuses:", dict(sorted(run.statuses.items())), "cases:", sum(run.cases.values()))
    report = "\n\n".join(run.failures)
    assert not run.failures, f"{len(run.failures)} operation(s) failed:\n\n{report}"
    # the run did reach the routes, for every operation (a positive case is never a 401)
    assert len(run.cases) >= 2 * 33 - 2, sorted(run.cases)
    assert all(count > 0 for count in run.cases.values()), run.cases
    positive = {status: n for (mode, status), n in run.statuses.items() if mode == "positive"}
    assert positive.get(200, 0) > 200 and 401 not in positive, positive
    negative = {status: n for (mode, status), n in run.statuses.items() if mode == "negative"}
    assert negative.get(422, 0) > 50, negative
