"""The service end to end: the real `offload serve` in a subprocess, the real client verbs over
HTTP, the real sandbox and pipeline (tune on the emulated device, then size). A batch comes back
with a verified plan, a sizing recommendation and the offloaded program per app, plus the combined
report; cancelling stops a running job's sandbox; a SIGKILLed service loses no job and finishes
each exactly once after its restart. The client's own refusals need no server."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from service_server import needs_sandbox, offload, server, tiny_program  # noqa: F401 (fixture)
from service_support import postgres_url  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


def test_a_batch_from_the_client_comes_back_verified_and_sized(server, tmp_path):
    needs_sandbox()
    srv = server()
    env = srv.client_env(srv.token("alice"))
    apps = tmp_path / "apps"
    apps.mkdir()
    tiny_program(apps / "alpha.c")
    tiny_program(apps / "beta.c", n=40000, inner=32)
    gamma = tiny_program(apps / "gamma.c", n=30000, inner=48)
    gamma.write_text('#include "gamma.h"\n' + gamma.read_text().replace("#define N 30000", ""))
    (apps / "gamma.h").write_text("#define N 30000\n")
    out = tmp_path / "results"
    done = offload("batch", apps, "--device", "emu", "--budget", "2", "--wait", "--json", "--out", out, env=env)
    assert done.returncode == 0, done.stderr
    batch = json.loads(done.stdout)
    assert batch["state"] == "done" and len(batch["jobs"]) == 3
    assert "1 of 3 finished" in done.stderr or "2 of 3 finished" in done.stderr      # progress shown
    for app in ("alpha", "beta", "gamma"):
        plan = json.loads((out / app / "plan.json").read_text())
        assert plan["verified"] and plan["verified_on"] == "emu" and plan["gpu_regions"], app
        sizing = json.loads((out / app / "sizing.json").read_text())
        assert sizing["recommendation"]["config"], app
        assert (out / app / "program" / "Makefile").is_file() and (out / app / "report.html").is_file()
    report = json.loads((out / "batch-sizing.json").read_text())
    assert sorted(r["app"] for r in report["apps"]) == ["alpha", "beta", "gamma"]
    assert all(r["feasible"] and r["cost_per_run"] > 0 for r in report["apps"])
    assert "Batch sizing: 3 app(s)" in (out / "batch-sizing.html").read_text()

    listed = offload("jobs", env=env)
    assert listed.returncode == 0 and listed.stdout.count("plan verified") == 3
    one = batch["jobs"][0]["id"]
    status = offload("status", one, "--json", env=env)
    assert json.loads(status.stdout)["result"]["recommendation"]
    assert offload("jobs", env=srv.client_env(srv.token("bob"))).stdout == ""      # bob sees none of it


def test_cancelling_a_running_job_stops_its_sandbox(server, tmp_path):
    needs_sandbox()
    srv = server(workers=1)
    env = srv.client_env(srv.token("alice"))
    program = tiny_program(tmp_path / "long.c", n=400000, inner=40)
    job = json.loads(offload("submit", program, "--device", "emu", "--budget", "30", "--json", env=env).stdout)
    _wait_for(srv, env, job["id"], lambda j: j["state"] == "running")
    cancelled = offload("cancel", job["id"], env=env)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    deadline = time.monotonic() + 20
    while _sandboxed(srv.data / "jobs" / job["id"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _sandboxed(srv.data / "jobs" / job["id"]), "the job's sandbox is still running"
    waited = offload("status", job["id"], "--wait", env=env)
    assert waited.returncode == 1 and "cancelled" in waited.stdout         # not done: non-zero


def test_jobs_take_turns_with_the_hosts_tunes_for_the_measurement_lock(tmp_path, monkeypatch):
    needs_sandbox()
    from offloader.service.config import ServiceConfig
    from offloader.service.sandbox import run_sandboxed
    from offloader.service.store import Store
    from offloader.service.worker import JobRun, Workers
    from offloader.tune.lock import measurement_lock

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))      # the host's lock folder
    store = Store(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.submit("alice", "tune", {"app": "a"}, {"a.c": b"int main(void) { return 0; }\n"})
    workers = Workers(ServiceConfig(data=tmp_path / "data", workers=0), store)
    workers.start()
    run = JobRun(workers, store.claim("test"))
    run._lay_out()
    probe = ["flock", "--nonblock", "cache/offload/locks/measure-cpu.lock", "true"]   # as the job's tune would
    with measurement_lock("cpu"):
        assert run_sandboxed(probe, run.dir).returncode == 1              # busy: the host is measuring
    assert run_sandboxed(probe, run.dir).returncode == 0
    store.close()


def test_a_killed_service_loses_no_job_and_finishes_each_once(server, tmp_path):
    needs_sandbox()
    srv = server(workers=1)
    env = srv.client_env(srv.token("alice"))
    first = tiny_program(tmp_path / "first.c", n=60000, inner=10)
    second = tiny_program(tmp_path / "second.c", n=20000, inner=5)
    running = json.loads(offload("submit", first, "--device", "emu", "--budget", "5", "--json", env=env).stdout)
    queued = json.loads(offload("submit", second, "--device", "emu", "--budget", "2", "--json", env=env).stdout)
    _wait_for(srv, env, running["id"], lambda j: j["state"] == "running" and j["progress"].get("measured", 0) >= 1)
    srv.kill()
    deadline = time.monotonic() + 20          # the sandbox dies with the service
    while _sandboxed(srv.data / "jobs" / running["id"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _sandboxed(srv.data / "jobs" / running["id"])

    again = server(workers=1, data=srv.data)
    assert "1 job(s) interrupted by the last stop" in again.log
    for job in (running, queued):
        _wait_for(again, env, job["id"], lambda j: j["state"] in ("done", "failed", "cancelled"), timeout=180)
    headers = {"Authorization": f"Bearer {env['OFFLOAD_TOKEN']}"}
    jobs = {j["id"]: j for j in httpx.get(f"{again.url}/jobs", headers=headers).json()}
    assert set(jobs) == {running["id"], queued["id"]}
    assert jobs[running["id"]]["state"] == "done" and jobs[running["id"]]["attempts"] == 2
    assert "retried after a restart" in jobs[running["id"]]["note"]
    assert jobs[queued["id"]]["state"] == "done" and jobs[queued["id"]]["attempts"] == 1
    log = httpx.get(f"{again.url}/jobs/{running['id']}/files/log.txt", headers=headers).text
    assert "resumed the study" in log                    # the Optuna study in the job folder survived
    assert again.log.count(f"job {running['id']}: done") == 1
    assert again.log.count(f"job {queued['id']}: done") == 1


def test_the_service_runs_jobs_from_a_postgresql_store(server, postgres_url, tmp_path):
    needs_sandbox()
    srv = server("--db", postgres_url, workers=1)
    env = srv.client_env(srv.token("alice"))
    program = tiny_program(tmp_path / "pg.c", n=20000, inner=5)
    done = offload("submit", program, "--device", "emu", "--budget", "1", "--wait", "--json", env=env)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["state"] == "done" and job["result"]["verified"] and "plan.json" in job["outputs"]
    assert not (srv.data / "jobs.db").exists()                       # nothing went to SQLite


def test_over_tls_the_service_may_listen_beyond_the_loopback(server, tmp_path):
    needs_sandbox()
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate with")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    srv = server("--host", "0.0.0.0", "--tls-cert", str(cert), "--tls-key", str(key), ca=cert)
    env = {**srv.client_env(srv.token("alice")), "OFFLOAD_CA": str(cert)}
    listed = offload("jobs", env=env)
    assert listed.returncode == 0, listed.stderr
    untrusted = offload("jobs", env={**env, "OFFLOAD_CA": ""})
    assert untrusted.returncode == 2 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr


def test_the_client_refuses_plain_http_to_another_host_and_bad_input_in_one_line(tmp_path):
    program = tiny_program(tmp_path / "app.c")
    cases = [
        (("submit", program, "--server", "http://gpu.example.com:8787", "--token", "t"), "over plain http"),
        (("submit", tmp_path / "missing.c", "--server", "http://127.0.0.1:9", "--token", "t"), "no such file"),
        (("submit", tmp_path / "notes.txt", "--server", "http://127.0.0.1:9"), "expected C source files"),
        (("jobs", "--server", "http://127.0.0.1:9", "--token", "t"), "cannot reach http://127.0.0.1:9"),
        (("jobs", "--server", "ftp://host"), "expected a URL like"),
        (("batch", tmp_path / "nowhere", "--server", "http://127.0.0.1:9"), "no such folder or CSV"),
        (("serve", "--host", "0.0.0.0", "--data", tmp_path / "d"), "refusing to listen on 0.0.0.0 without TLS"),
        (("serve", "--tls-cert", tmp_path / "c.pem", "--data", tmp_path / "d"), "both --tls-cert and --tls-key"),
    ]
    for args, message in cases:
        done = offload(*args, env={"XDG_CONFIG_HOME": str(tmp_path / "config"), "OFFLOAD_SERVER": "",
                                   "OFFLOAD_TOKEN": ""})
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_server_and_token_come_from_the_config_file(tmp_path):
    config = tmp_path / "config" / "offload" / "client.toml"
    config.parent.mkdir(parents=True)
    config.write_text('server = "http://127.0.0.1:9"\ntoken = "offload_x"\n')
    done = offload("jobs", env={"XDG_CONFIG_HOME": str(tmp_path / "config"), "OFFLOAD_SERVER": "",
                                "OFFLOAD_TOKEN": ""})
    assert done.returncode == 2 and "cannot reach http://127.0.0.1:9" in done.stderr


def _wait_for(srv, env, job_id: str, ready, timeout: float = 120) -> dict:
    headers = {"Authorization": f"Bearer {env['OFFLOAD_TOKEN']}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{srv.url}/jobs/{job_id}", headers=headers, timeout=10).json()
        if ready(job):
            return job
        time.sleep(0.2)
    pytest.fail(f"job {job_id} not ready within {timeout} s: {job}\n{srv.log}")


def _sandboxed(job_dir: Path) -> bool:
    """Whether any process still runs with the job's folder on its command line (bwrap's --chdir)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(job_dir).encode() in cmdline.read_bytes():
                return True
        except OSError:
            pass
    return False
