"""The API against its own OpenAPI document: schemathesis generates requests for every operation from
``/openapi.json`` (valid ones and ones that break the schema), once with the admin key and once with a
pm + intake key, and every answer must be what the document promises.

Checked per answer: no server error (a 5xx or an exception), a documented status code, a documented
content type, the documented headers, and a body that validates against the documented schema. Failures
are collected rather than raised, so one run reports every finding and the number of cases is known.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from core.auth.api_keys import create_api_key
from core.loop import FeedbackLoop
from tests.support.env import ADMIN_KEY
from tests.support.loops import make_loop
from tests.support.themes import CHECKOUT, LOGIN, build_themes

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
# Per operation, generation mode and key: about 23 operations x 2 modes x 2 keys x 25 > 2,000 cases.
EXAMPLES_PER_OPERATION = 25
MIN_CASES_PER_KEY = 1_000
DEMO_RULES = Path(__file__).resolve().parents[1] / "core" / "demo" / "rules.toml"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FeedbackLoop, FastAPI, str]]:
    """A fresh SQLite database with items and two themes, a rules file of its own, no rate limits
    (thousands of requests in a minute are the point here), and a member key."""
    folder = tmp_path_factory.mktemp("schemathesis")
    rules = folder / "rules.toml"
    shutil.copy(DEMO_RULES, rules)
    loop = make_loop(f"sqlite:///{folder / 'api.db'}", rules_file=rules, rate_limit_per_key="",
                     rate_limit_per_channel="", rate_limit_failed_auth_per_address="")
    build_themes(loop, CHECKOUT + LOGIN)
    with loop.session() as session:
        member_key = create_api_key(session, "member", scopes=["pm", "intake"])
    yield loop, create_app(loop.settings, loop=loop), member_key
    loop.close()


def failure_lines(label: str, case: Any, error: BaseException) -> list[str]:
    errors = error.exceptions if isinstance(error, BaseExceptionGroup) else (error,)
    sent = f"{case.method} {case.formatted_path} query={case.query!r} body={str(case.body)[:200]!r}"
    return [f"{label}: {type(found).__name__}: {str(found)[:600]} <- {sent}" for found in errors]


def exercise(app: FastAPI, key: str) -> tuple[int, list[str]]:
    """Every operation in both generation modes; the number of cases sent and the failures found."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {key}"}
    sent = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                                 suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            @given(case=operation.as_strategy(generation_mode=mode))
            def send(case: Any) -> None:
                nonlocal sent
                sent += 1
                try:
                    case.call_and_validate(headers=headers, checks=CHECKS)
                except Exception as error:  # a check's failure, or the app's own exception (a 500)
                    failures.extend(failure_lines(case.operation.label, case, error))

            try:
                send()
            except Unsatisfiable:  # nothing can break the schema of an operation without inputs (/healthz)
                assert mode is GenerationMode.NEGATIVE, operation.label
    return sent, failures


@pytest.mark.parametrize("who", ["admin", "member"])
def test_every_answer_is_what_the_document_promises(seeded: tuple[FeedbackLoop, FastAPI, str], who: str) -> None:
    _loop, app, member_key = seeded
    sent, failures = exercise(app, ADMIN_KEY if who == "admin" else member_key)
    assert not failures, f"{len(failures)} failures in {sent} cases:\n" + "\n".join(failures[:25])
    # Two keys, so at least 2,000 cases in all: each run has to reach its half.
    assert sent >= MIN_CASES_PER_KEY, sent
