"""The API fuzzed from its own OpenAPI spec (schemathesis): whatever the requests, valid or not,
with a token or without, no answer is a 5xx. In-process against a real SQLite store; nothing runs
the jobs the fuzzer manages to submit."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from offloader.service.app import Service, create_app
from offloader.service.config import ServiceConfig
from offloader.service.store import Store

DATA = Path(tempfile.mkdtemp(prefix="offload-fuzz-"))
STORE = Store(f"sqlite:///{DATA / 'jobs.db'}")
TOKEN = STORE.create_user_token("fuzzer")
APP = create_app(Service(ServiceConfig(data=DATA, max_jobs_in_flight=5), STORE, {"default": None}, gpu=False))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    STORE.close()
    shutil.rmtree(DATA, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # starlette's TestClient on httpx
        for headers in ({"Authorization": f"Bearer {TOKEN}"}, {}):
            response = case.call(headers=headers)
            assert response.status_code < 500, (case.method, case.formatted_path, response.status_code,
                                                 response.text[:500])
