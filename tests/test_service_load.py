"""Load: 50 jobs from 10 concurrent clients (5 users) against the real service. Every job must be
accepted, none lost, each finished exactly once; meanwhile the API must keep answering. The
figures (jobs accepted per second, API latency while jobs run) go to
results/bench/service_load.json."""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from offloader.service.client import Client
from offloader.service.config import ClientSettings
from service_server import ROOT, needs_sandbox, server  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

USERS, CLIENTS, JOBS_PER_CLIENT = 5, 10, 5
RESULTS = ROOT / "results" / "bench" / "service_load.json"


def program(i: int) -> bytes:
    return (f'#include <stdio.h>\nint main(void) {{\n    long s = 0;\n'
            f'    for (int i = 0; i < {100 + i}; i++) s += i * {i + 1};\n'
            f'    printf("%ld\\n", s);\n    return 0;\n}}\n').encode()


def test_fifty_jobs_from_concurrent_clients_are_all_accepted_and_finished_once(server):
    needs_sandbox()
    srv = server("--max-jobs-in-flight", "100", workers=2)
    tokens = [srv.token(f"user{u}") for u in range(USERS)]
    submit_latency: list[float] = []

    def client_session(c: int) -> list[tuple[int, str]]:
        client = Client(ClientSettings(srv.url, tokens[c % USERS]))
        ids = []
        try:
            for j in range(JOBS_PER_CLIENT):
                n = c * JOBS_PER_CLIENT + j
                start = time.perf_counter()
                job = client.submit([(f"load{n}.c", program(n))], {"device": "emu", "budget": 1})
                submit_latency.append(time.perf_counter() - start)
                ids.append((c % USERS, job["id"]))
        finally:
            client.close()
        return ids

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        submitted = [pair for ids in pool.map(client_session, range(CLIENTS)) for pair in ids]
    accept_seconds = time.perf_counter() - started
    assert len(submitted) == CLIENTS * JOBS_PER_CLIENT
    assert len({job_id for _, job_id in submitted}) == len(submitted)

    latency: list[float] = []
    stop = threading.Event()
    probe = threading.Thread(target=_probe, args=(srv.url, tokens[0], submitted[0][1], latency, stop))
    probe.start()
    try:
        states = _drain(srv.url, tokens, timeout=600)
    finally:
        stop.set()
        probe.join()
    drained = time.perf_counter() - started

    for user, job_id in submitted:                       # none lost, none foreign
        assert states[user][job_id]["state"] == "done", (job_id, states[user][job_id]["note"])
        assert states[user][job_id]["attempts"] == 1
        assert srv.log.count(f"job {job_id}: done") == 1    # finished once
    assert sum(map(len, states)) == len(submitted)
    assert latency and max(latency) < 5.0, "the API stopped answering while jobs ran"

    figures = {
        "what": "offload serve under load: jobs submitted over HTTP by concurrent clients, tuned "
                "(--device emu --budget 1) and sized by the workers in the sandbox",
        "jobs": len(submitted), "clients": CLIENTS, "users": USERS, "workers": 2, "host_cpus": os.cpu_count(),
        "store": "sqlite",
        "accepted_per_second": round(len(submitted) / accept_seconds, 1),
        "submit_latency_seconds": _summary(submit_latency),
        "api_latency_while_running_seconds": _summary(latency),
        "api_latency_probe": "GET /jobs and GET /jobs/{id}, every 0.25 s while jobs ran",
        "seconds_to_finish_all": round(drained, 1),
        "jobs_finished_per_minute": round(60 * len(submitted) / drained, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")


def _probe(url: str, token: str, job_id: str, latency: list[float], stop: threading.Event) -> None:
    """API latency while the workers are busy."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        while not stop.wait(0.25):
            for path in ("/jobs", f"/jobs/{job_id}"):
                start = time.perf_counter()
                assert http.get(path).status_code == 200
                latency.append(time.perf_counter() - start)


def _drain(url: str, tokens: list[str], timeout: float) -> list[dict[str, dict]]:
    """Every user's jobs by id, once none is queued or running."""
    deadline = time.monotonic() + timeout
    while True:
        states = [{j["id"]: j for j in httpx.get(f"{url}/jobs", headers={"Authorization": f"Bearer {t}"},
                                                  timeout=30).json()} for t in tokens]
        if all(j["state"] not in ("queued", "running") for s in states for j in s.values()):
            return states
        if time.monotonic() > deadline:
            pytest.fail("jobs still queued or running after the timeout")
        time.sleep(1.0)


def _summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"samples": len(values), "p50": round(statistics.median(ordered), 4),
            "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 4), "max": round(ordered[-1], 4)}
