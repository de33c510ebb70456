"""The service's HTTP API in-process, against a real SQLite store and no workers: tokens,
isolation between users, clear 4xx answers to bad requests, upload limits, quotas, cancelling,
result files, and a batch's combined sizing once its jobs have finished (finished here the way
a worker finishes them: claim, then finish with outputs)."""

from __future__ import annotations

import io
import json
import tarfile
import warnings

import pytest

from offloader.service.app import Service, create_app
from offloader.service.config import ServiceConfig, UploadLimits
from offloader.service.store import DONE, Store
from sizing_support import profile_doc

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

LIMITS = UploadLimits(max_files=3, max_file_bytes=1000, max_job_bytes=1500, max_batch_jobs=3,
                      max_request_bytes=16000)
PROGRAM = b'#include <stdio.h>\nint main(void) { printf("1\\n"); return 0; }\n'


@pytest.fixture
def api(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'jobs.db'}")
    config = ServiceConfig(data=tmp_path, max_jobs_in_flight=3, max_disk_mib=1, max_budget=50, uploads=LIMITS)
    client = TestClient(create_app(Service(config, store, {"default": None}, gpu=False)))
    tokens = {name: store.create_user_token(name) for name in ("alice", "bob")}
    client.as_user = lambda name: {"Authorization": f"Bearer {tokens[name]}"}
    client.store = store
    yield client
    store.close()


def submit(api, user="alice", files=(("app.c", PROGRAM),), options=None, **kwargs):
    return api.post("/jobs", headers=api.as_user(user), files=[("files", f) for f in files],
                    data={"options": json.dumps(options or {})}, **kwargs)


def test_health_needs_no_token_and_everything_else_a_valid_one(api):
    assert api.get("/health").json()["status"] == "ok"
    for headers in ({}, {"Authorization": "Bearer offload_nonsense"}, {"Authorization": "Basic eDp5"},
                    {"Authorization": "Bearer " + "x" * 5000}):
        answer = api.get("/jobs", headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        assert "token" in answer.json()["detail"]


def test_users_see_only_their_own_jobs(api):
    job = submit(api).json()
    assert job["state"] == "queued" and job["app"] == "app" and job["files"] == {"app.c": len(PROGRAM)}
    assert job["options"]["budget"] == 8 and job["options"]["catalog"] == "default"
    assert [j["id"] for j in api.get("/jobs", headers=api.as_user("alice")).json()] == [job["id"]]
    bob = api.as_user("bob")
    assert api.get("/jobs", headers=bob).json() == []
    for answer in (api.get(f"/jobs/{job['id']}", headers=bob), api.post(f"/jobs/{job['id']}/cancel", headers=bob),
                   api.get(f"/jobs/{job['id']}/files/plan.json", headers=bob),
                   api.get(f"/jobs/{job['id']}/archive", headers=bob)):
        assert answer.status_code == 404 and answer.json()["detail"] == f"no job {job['id']}"
    assert api.get(f"/jobs/{job['id']}", headers=api.as_user("alice")).json()["state"] == "queued"


@pytest.mark.parametrize("files, options, status, message", [
    ((("app.py", b"print(1)"),), {}, 400, "only C sources (.c) and headers (.h)"),
    ((("app.c", b"int main(void) { return 0; }\0\1\2"),), {}, 400, "binary data"),
    ((("app.c", b"int x = '\xff\xfe';"),), {}, 400, "not UTF-8"),
    ((("../app.c", PROGRAM),), {}, 400, "plain relative name"),
    ((("/etc/app.c", PROGRAM),), {}, 400, "plain relative name"),
    ((("util.h", b"int f(void);"),), {}, 400, "no C source"),
    ((("app.c", PROGRAM), ("app.c", PROGRAM)), {}, 400, "uploaded twice"),
    ((("app.c", b"/*" + b"x" * 1000 + b"*/"),), {}, 413, "over the limit of 1000 bytes per file"),
    (tuple((f"f{i}.c", PROGRAM) for i in range(4)), {}, 413, "at most 3 per job"),
    (tuple((f"f{i}.c", b"/*" + b"x" * 900 + b"*/") for i in range(2)), {}, 413, "limit per job"),
    ((("app.c", PROGRAM),), {"budget": 0}, 400, "options: budget"),
    ((("app.c", PROGRAM),), {"budget": 51}, 400, "over this server's limit of 50"),
    ((("app.c", PROGRAM),), {"budgett": 3}, 400, "options: budgett: Extra inputs are not permitted"),
    ((("app.c", PROGRAM),), {"strategy": "fastest"}, 400, "options: strategy"),
    ((("app.c", PROGRAM),), {"defines": ["N 3"]}, 400, "is not NAME or NAME=VALUE"),
    ((("app.c", PROGRAM),), {"include_dirs": ["../../etc"]}, 400, "relative folder among the uploaded files"),
    ((("app.c", PROGRAM),), {"cflags": "-O2 /etc/passwd"}, 400, "only options starting with '-'"),
    ((("app.c", PROGRAM),), {"cflags": "-o /tmp/x"}, 400, "(and not -o)"),
    ((("app.c", PROGRAM),), {"args": ["'unclosed"]}, 400, "cannot split args"),
    ((("app.c", PROGRAM),), {"device": "cuda"}, 400, "this server has no GPU"),
    ((("app.c", PROGRAM),), {"catalog": "cheap"}, 400, "catalog 'cheap' is not on this server"),
    ((("app.c", PROGRAM),), {"max_price": -1}, 400, "options: max_price"),
])
def test_bad_submissions_get_a_clear_4xx(api, files, options, status, message):
    answer = submit(api, files=files, options=options)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]
    assert api.get("/jobs", headers=api.as_user("alice")).json() == []


def test_malformed_requests_are_4xx_too(api):
    alice = api.as_user("alice")
    assert api.post("/jobs", headers=alice, data={"options": "{}"}).status_code == 422       # no files
    not_json = api.post("/jobs", headers=alice, files=[("files", ("a.c", PROGRAM))], data={"options": "{budget"})
    assert not_json.status_code == 400 and "options: not JSON" in not_json.json()["detail"]
    listed = api.post("/jobs", headers=alice, files=[("files", ("a.c", PROGRAM))], data={"options": "[1]"})
    assert listed.status_code == 400 and "expected a JSON object" in listed.json()["detail"]
    huge = api.post("/jobs", headers={**alice, "Content-Type": "multipart/form-data; boundary=x"},
                    content=b"x" * 20000)
    assert huge.status_code == 413 and "request body over" in huge.json()["detail"]
    assert api.get("/jobs/" + "x" * 100, headers=alice).status_code == 422
    assert api.get("/jobs/0123456789abcdef", headers=alice).status_code == 404


def test_jobs_in_flight_and_disk_are_limited_per_user(api):
    ids = [submit(api).json()["id"] for _ in range(3)]
    over = submit(api)
    assert over.status_code == 429 and "3 job(s) in flight" in over.json()["detail"]
    assert submit(api, user="bob").status_code == 201                  # bob has his own quota
    assert api.post(f"/jobs/{ids[0]}/cancel", headers=api.as_user("alice")).json()["state"] == "cancelled"
    assert submit(api).status_code == 201
    job = api.store.claim("test")                                     # a result of 1 MiB fills the quota
    api.store.finish(job.id, DONE, {}, outputs={"report.html": b"x" * (1 << 20)})
    full = submit(api)
    assert full.status_code == 429 and "MiB you may keep" in full.json()["detail"]


def test_cancel_stops_a_queued_job_once(api):
    job = submit(api).json()
    alice = api.as_user("alice")
    assert api.post(f"/jobs/{job['id']}/cancel", headers=alice).json()["state"] == "cancelled"
    again = api.post(f"/jobs/{job['id']}/cancel", headers=alice)
    assert again.status_code == 409 and "already finished (cancelled)" in again.json()["detail"]
    assert api.store.claim("test") is None


def test_result_files_and_the_archive_come_from_the_store(api):
    job = submit(api).json()
    alice = api.as_user("alice")
    assert api.get(f"/jobs/{job['id']}/archive", headers=alice).status_code == 404
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("plan.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    claimed = api.store.claim("test")
    api.store.finish(claimed.id, DONE, {"verified": True},
                     outputs={"plan.json": b'{"verified": true}', "results.tar.gz": archive.getvalue()})
    plan = api.get(f"/jobs/{job['id']}/files/plan.json", headers=alice)
    assert plan.status_code == 200 and plan.json() == {"verified": True}
    assert plan.headers["content-type"] == "application/json"
    got = api.get(f"/jobs/{job['id']}/archive", headers=alice)
    assert got.headers["content-type"] == "application/gzip"
    assert tarfile.open(fileobj=io.BytesIO(got.content)).getnames() == ["plan.json"]
    assert api.get(f"/jobs/{job['id']}/files/..%2f..%2fjobs.db", headers=alice).status_code == 404
    assert api.get(f"/jobs/{job['id']}", headers=alice).json()["outputs"]["plan.json"] == 18


def submit_batch(api, manifest, files, user="alice"):
    return api.post("/batches", headers=api.as_user(user), files=[("files", f) for f in files],
                    data={"manifest": json.dumps(manifest)})


def test_a_batch_is_sized_together_once_every_job_has_finished(api):
    manifest = {"options": {"budget": 2, "max_price": 100}, "jobs": [
        {"app": "fast", "files": ["fast/fast.c"]},
        {"app": "slow", "files": ["slow/slow.c", "slow/util.h"], "options": {"deadline": 1e6}}]}
    files = (("fast/fast.c", PROGRAM), ("slow/slow.c", PROGRAM), ("slow/util.h", b"int f(void);\n"))
    batch = submit_batch(api, manifest, files)
    assert batch.status_code == 201, batch.text
    batch = batch.json()
    assert batch["state"] == "running" and batch["report"] is None and batch["id"].startswith("batch-")
    jobs = {j["app"]: j for j in batch["jobs"]}
    assert jobs["slow"]["options"]["deadline"] == 1e6 and jobs["slow"]["options"]["budget"] == 2
    assert jobs["slow"]["files"] == {"slow/slow.c": len(PROGRAM), "slow/util.h": 13}
    alice = api.as_user("alice")
    assert api.get(f"/batches/{batch['id']}/files/batch-sizing.html", headers=alice).status_code == 409
    assert api.get(f"/batches/{batch['id']}", headers=api.as_user("bob")).status_code == 404
    for _ in range(2):           # as workers would: the fast app offloads, the slow one fails
        job = api.store.claim("test")
        if job.options["app"] == "fast":
            profile = profile_doc(app="fast", cpu_part_seconds=0.5, gpu_kernel_seconds=0.1, kind="modeled")
            api.store.finish(job.id, DONE, {}, outputs={"profile.json": json.dumps(profile).encode()})
        else:
            api.store.finish(job.id, "failed", {}, note="tune failed: no such file")
    done = api.get(f"/batches/{batch['id']}", headers=alice).json()
    assert done["state"] == "done"
    rows = {r["app"]: r for r in done["report"]["apps"]}
    assert rows["fast"]["feasible"] and rows["fast"]["config"] and rows["fast"]["max_price"] == 100
    assert not rows["slow"]["feasible"] and "tune failed: no such file" in rows["slow"]["note"]
    page = api.get(f"/batches/{batch['id']}/files/batch-sizing.html", headers=alice)
    assert page.status_code == 200 and "Batch sizing: 2 app(s)" in page.text
    assert api.get(f"/batches/{batch['id']}/files/batch-sizing.csv", headers=alice).text.startswith("app,")


@pytest.mark.parametrize("manifest, message", [
    ({"jobs": []}, "manifest: jobs"),
    ({"jobs": [{"app": "a", "files": ["a.c"]}, {"app": "a", "files": ["a.c"]}]}, "app 'a' appears twice"),
    ({"jobs": [{"app": "a", "files": ["missing.c"]}]}, "file 'missing.c' was not uploaded"),
    ({"jobs": [{"app": "a", "files": ["a.c"], "options": {"catalog": "x"}}]}, "one for the whole batch"),
    ({"jobs": [{"app": "a", "files": ["a.c"], "options": {"budget": "many"}}]}, "app a: options: budget"),
    ({"jobs": [{"app": "../a", "files": ["a.c"]}]}, "manifest: jobs.0.app"),
    ({"jobs": [{"app": f"a{i}", "files": ["a.c"]} for i in range(4)]}, "over this server's limit of 3"),
])
def test_bad_batches_get_a_clear_4xx(api, manifest, message):
    answer = submit_batch(api, manifest, (("a.c", PROGRAM),))
    assert 400 <= answer.status_code < 500 and message in answer.json()["detail"], answer.text
    assert api.get("/jobs", headers=api.as_user("alice")).json() == []


def test_the_openapi_spec_names_every_route_and_the_bearer_scheme(api):
    spec = api.get("/openapi.json").json()
    assert set(spec["paths"]) == {"/health", "/jobs", "/jobs/{job_id}", "/jobs/{job_id}/cancel",
                                  "/jobs/{job_id}/files/{name}", "/jobs/{job_id}/archive", "/batches",
                                  "/batches/{batch_id}", "/batches/{batch_id}/files/{name}"}
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_retention_deletes_old_jobs_and_the_folders_no_run_needs(tmp_path):
    from offloader.service.server import retention_pass

    now = [1000.0]
    store = Store(f"sqlite:///{tmp_path / 'jobs.db'}", clock=lambda: now[0])
    submitted = []
    for _ in range(3):
        submitted.append(store.submit("alice", "tune", {}, {"a.c": PROGRAM}))
        now[0] += 1
    old, fresh, running = submitted
    for job_id in submitted:
        assert store.claim("w").id == job_id
        if job_id != running:                                            # which stays in flight
            store.finish(job_id, DONE, {}, outputs={"plan.json": b"{}"})
        now[0] += 86400
    jobs = tmp_path / "jobs"
    for name in (old, running, "0123456789abcdef"):                      # the last: a purged job's
        (jobs / name).mkdir(parents=True)
    assert retention_pass(store, jobs, 2.5 * 86400, busy={running}) == (1, 2)
    assert [j.id for j in store.list_jobs("alice")] == [fresh, running]
    assert [p.name for p in jobs.iterdir()] == [running]
    store.close()


def test_the_client_sends_each_sources_headers_under_names_relative_to_the_main_source(tmp_path):
    from offloader.service.uploads import batch_files, job_files

    (tmp_path / "app" / "include").mkdir(parents=True)
    (tmp_path / "lib").mkdir()
    main = tmp_path / "app" / "main.c"
    main.write_text('#include "local.h"\nint main(void) { return 0; }\n')
    (tmp_path / "app" / "local.h").write_text("")
    (tmp_path / "app" / "include" / "api.h").write_text("")
    (tmp_path / "lib" / "util.c").write_text("int util;\n")
    uploads, includes = job_files([main, tmp_path / "lib" / "util.c"], [tmp_path / "app" / "include"])
    assert [name for name, _ in uploads] == ["main.c", "util.c", "include/api.h", "local.h"]
    assert includes == ["include"]
    jobs_csv = tmp_path / "jobs.csv"
    jobs_csv.write_text("app,sources,args,max_price,deadline\nfirst,app/main.c lib/util.c,-n 3,0.5,\n")
    uploads, jobs = batch_files(jobs_csv, [])
    assert jobs == [{"app": "first", "files": ["first/main.c", "first/util.c", "first/local.h"],
                     "options": {"args": ["-n 3"], "max_price": 0.5}}]
    _, jobs = batch_files(tmp_path / "app", [tmp_path / "app" / "include"])
    assert jobs[0]["files"] == ["main/main.c", "main/include/api.h", "main/local.h"]
    assert jobs[0]["options"] == {"include_dirs": ["main/include"]}
