"""The HTTP API of the verification service (FastAPI; the OpenAPI spec is at /openapi.json).

Handlers only check requests and talk to the store: they never touch users' code, so the API
keeps answering while workers run jobs. Every route but /health needs a bearer token, and a
user only ever sees their own jobs: someone else's job is a 404, exactly like a missing one.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import __version__
from ..errors import UserError
from .batchreport import combined_report
from .config import ServiceConfig, UploadLimits
from .jobspec import NAME, BadRequest, JobOptions, Upload, check_files, describe, parse_options
from .store import FINISHED, JobView, Store

ARCHIVE = "results.tar.gz"
MEDIA = {".json": "application/json", ".html": "text/html; charset=utf-8", ".csv": "text/csv; charset=utf-8",
         ".txt": "text/plain; charset=utf-8", ".gz": "application/gzip"}
JobId = Annotated[str, PathParam(max_length=64, description="a job id from POST /jobs")]
FileName = Annotated[str, PathParam(max_length=255, description="e.g. plan.json, sizing.json, report.html")]


@dataclass
class Service:
    """What the handlers share: the settings, the store, the catalogs users may name, and
    whether this host has a GPU to offer."""

    config: ServiceConfig
    store: Store
    catalogs: dict[str, Optional[Path]]
    gpu: bool
    admit: threading.Lock = field(default_factory=threading.Lock)   # quota check and submit as one step


# ---------------------------------------------------------------------------------- schemas

class JobOut(BaseModel):
    id: str
    kind: str
    app: str
    state: str = Field(description="queued | running | done | failed | cancelled")
    batch: Optional[str]
    options: dict[str, Any]
    progress: dict[str, Any] = Field(description="phase, trials, measured, budget, best_seconds")
    result: Optional[dict[str, Any]]
    note: str
    attempts: int
    created: float
    started: Optional[float]
    finished: Optional[float]
    files: dict[str, int] = Field(description="uploaded file -> bytes")
    outputs: dict[str, int] = Field(description="result file -> bytes (fetch with /jobs/{id}/files/{name})")


class BatchOut(BaseModel):
    id: str
    state: str = Field(description="running until every job has finished, then done")
    jobs: list[JobOut]
    report: Optional[dict[str, Any]] = Field(description="the combined sizing, once every job has finished")


class BatchJob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    app: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    files: list[str] = Field(min_length=1, max_length=64, description="upload names of this app's files")
    options: dict[str, Any] = Field(default_factory=dict, description="overrides of the batch's options")


class BatchManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    options: dict[str, Any] = Field(default_factory=dict, description="options shared by every job")
    jobs: list[BatchJob] = Field(min_length=1)


class Message(BaseModel):
    detail: str


ERRORS = {code: {"model": Message} for code in (400, 401, 404, 409, 413, 422, 429)}


def view(job: JobView) -> JobOut:
    options = dict(job.options)
    return JobOut(id=job.id, kind=job.kind, app=options.pop("app", ""), state=job.state, batch=job.batch,
                  options=options, progress=job.progress, result=job.result, note=job.note,
                  attempts=job.attempts, created=job.created, started=job.started, finished=job.finished,
                  files=job.files, outputs=job.outputs)


# ------------------------------------------------------------------------------------- auth

bearer = HTTPBearer(auto_error=False, description="a token from `offload serve --create-token NAME`")


def current_user(request: Request,
                 credentials: Annotated[Optional[HTTPAuthorizationCredentials], Depends(bearer)]) -> str:
    token = credentials.credentials if credentials else ""
    store = request.app.state.service.store
    name = store.user_for_token(token) if 0 < len(token) <= 200 else None
    if name is None:
        raise HTTPException(401, "missing or unknown token: send `Authorization: Bearer TOKEN` "
                                 "(`offload serve --create-token NAME` makes one)",
                            headers={"WWW-Authenticate": "Bearer"})
    return name


User = Annotated[str, Depends(current_user)]


# -------------------------------------------------------------------------------------- app

def create_app(service: Service) -> FastAPI:
    app = FastAPI(title="offload verification service", version=__version__,
                  description="Tune C programs' GPU offloading and size their VMs, from anywhere.",
                  responses=ERRORS)
    app.add_middleware(BodyLimit, limit=service.config.uploads.max_request_bytes)
    app.state.service = service

    @app.exception_handler(BadRequest)
    def bad_request(_request: Request, exc: BadRequest):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    def invalid(_request: Request, exc: RequestValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        return JSONResponse({"detail": f"{where}: {error['msg']}"}, status_code=422)

    @app.get("/health", summary="Is the service up (no token needed)")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.post("/jobs", status_code=201, summary="Submit C sources to tune and size")
    def submit(who: User,
               files: Annotated[list[UploadFile], File(description="C sources (.c) and headers (.h); "
                                                                   "the first .c names the app")],
               options: Annotated[str, Form(description="JSON object of JobOptions")] = "{}") -> JobOut:
        opts = _options(service, options)
        sources = check_files(_uploads(files, service.config.uploads), service.config.uploads)
        app_name = Path(next(n for n in sources if n.endswith(".c"))).stem
        with service.admit:
            _admit(service, who, 1, sum(map(len, sources.values())))
            job_id = service.store.submit(who, "tune", {"app": app_name, **opts.model_dump()}, sources)
        return view(service.store.get(who, job_id))

    @app.get("/jobs", summary="My jobs, oldest first")
    def jobs(who: User) -> list[JobOut]:
        return [view(j) for j in service.store.list_jobs(who)]

    @app.get("/jobs/{job_id}", summary="A job's state, progress and result")
    def job(who: User, job_id: JobId) -> JobOut:
        return view(_job(service, who, job_id))

    @app.post("/jobs/{job_id}/cancel", summary="Cancel a queued or running job")
    def cancel(who: User, job_id: JobId) -> JobOut:
        found = _job(service, who, job_id)
        if not service.store.cancel(who, job_id):
            raise HTTPException(409, f"job {job_id} has already finished ({found.state})")
        return view(service.store.get(who, job_id))

    @app.get("/jobs/{job_id}/files/{name}", summary="One result file", response_class=Response,
             responses={200: {"content": {m: {} for m in set(MEDIA.values())}}})
    def job_file(who: User, job_id: JobId, name: FileName) -> Response:
        _job(service, who, job_id)
        return _file(service.store.output(who, job_id, name), name, f"job {job_id} has no file {name}")

    @app.get("/jobs/{job_id}/archive", summary="All results and the offloaded program, as a tar.gz",
             response_class=Response, responses={200: {"content": {"application/gzip": {}}}})
    def archive(who: User, job_id: JobId) -> Response:
        found = _job(service, who, job_id)
        data = service.store.output(who, job_id, ARCHIVE)
        return _file(data, f"{found.options.get('app') or job_id}-{job_id}.tar.gz",
                     f"job {job_id} has no results archive ({found.state})")

    @app.post("/batches", status_code=201, summary="Submit many apps at once, sized together at the end")
    def batch(who: User,
              files: Annotated[list[UploadFile], File(description="every app's files, named as in the manifest")],
              manifest: Annotated[str, Form(description="JSON BatchManifest: shared options and, per app, "
                                                        "its files and option overrides")]) -> BatchOut:
        plan = _manifest(service, manifest)
        limits = service.config.uploads
        uploads = {}
        for upload in _uploads(files, limits, per_request=True):
            if upload.name in uploads:
                raise BadRequest(f"{upload.name}: uploaded twice; name each app's files apart, e.g. app/main.c")
            uploads[upload.name] = upload
        jobs = []
        for entry in plan.jobs:
            missing = [n for n in entry.files if n not in uploads]
            if missing:
                raise BadRequest(f"manifest: app {entry.app}: file {missing[0]!r} was not uploaded")
            sources = check_files([uploads[n] for n in entry.files], limits)
            opts = _options(service, json.dumps(entry.options), plan.options, where=f"app {entry.app}")
            jobs.append(({"app": entry.app, **opts.model_dump()}, sources))
        batch_id = "batch-" + secrets.token_hex(8)
        with service.admit:
            _admit(service, who, len(jobs), sum(len(d) for _, s in jobs for d in s.values()))
            for options, sources in jobs:
                service.store.submit(who, "tune", options, sources, batch=batch_id)
        return _batch(service, who, batch_id)

    @app.get("/batches/{batch_id}", summary="A batch's jobs and, once all have finished, the combined sizing")
    def batch_status(who: User, batch_id: JobId) -> BatchOut:
        return _batch(service, who, batch_id)

    @app.get("/batches/{batch_id}/files/{name}", summary="batch-sizing.html, .csv or .json",
             response_class=Response, responses={200: {"content": {"text/html": {}, "text/csv": {}}}})
    def batch_file(who: User, batch_id: JobId, name: FileName) -> Response:
        report = _report(service, who, _members(service, who, batch_id))
        if report is None:
            raise HTTPException(409, f"batch {batch_id} is still running")
        return _file(report.files.get(name), name, f"batch {batch_id} has no file {name}")

    return app


# ---------------------------------------------------------------------------------- helpers

def _uploads(files: list[UploadFile], limits: UploadLimits, per_request: bool = False) -> list[Upload]:
    """Reads each upload, never more than one byte over its limit."""
    most, per = (limits.max_files * limits.max_batch_jobs, "batch") if per_request else (limits.max_files, "job")
    if len(files) > most:
        raise BadRequest(f"{len(files)} files: at most {most} per {per}", 413)
    out = []
    for f in files:
        data = f.file.read(limits.max_file_bytes + 1)
        out.append(Upload(f.filename or "", data))
    return out


def _options(service: Service, text: str, defaults: Optional[dict] = None, where: str = "") -> JobOptions:
    config = service.config
    try:
        options = parse_options(text, config.max_budget, config.max_time_limit, defaults)
    except BadRequest as exc:
        raise BadRequest(f"{where}: {exc}" if where else str(exc)) from None
    if options.catalog not in service.catalogs:
        raise BadRequest(f"options: catalog {options.catalog!r} is not on this server; choose from "
                         + ", ".join(sorted(service.catalogs)))
    if options.device == "cuda" and not service.gpu:
        raise BadRequest("options: device 'cuda': this server has no GPU; use 'auto' or 'emu'")
    return options


def _manifest(service: Service, text: str) -> BatchManifest:
    try:
        plan = BatchManifest.model_validate_json(text)
    except ValidationError as exc:
        raise BadRequest("manifest: " + describe(exc)) from None
    if len(plan.jobs) > service.config.uploads.max_batch_jobs:
        raise BadRequest(f"manifest: {len(plan.jobs)} apps, over this server's limit of "
                         f"{service.config.uploads.max_batch_jobs} per batch", 413)
    apps = [j.app for j in plan.jobs]
    twice = next((a for a in apps if apps.count(a) > 1), None)
    if twice:
        raise BadRequest(f"manifest: app {twice!r} appears twice")
    if any("catalog" in j.options for j in plan.jobs):
        raise BadRequest("manifest: the catalog is one for the whole batch: set it in the shared options")
    return plan


def _admit(service: Service, who: str, jobs: int, size: int) -> None:
    """The user's quotas: jobs in flight and bytes kept."""
    config, store = service.config, service.store
    flying = store.in_flight(who)
    if flying + jobs > config.max_jobs_in_flight:
        raise BadRequest(f"quota: {flying} job(s) in flight and {jobs} more would exceed your limit of "
                         f"{config.max_jobs_in_flight}; wait for some to finish or cancel them", 429)
    used, limit = store.disk_used(who), config.max_disk_mib << 20
    if used + size > limit:
        raise BadRequest(f"quota: your jobs keep {used >> 20} MiB of the {config.max_disk_mib} MiB you may keep; "
                         f"results are deleted {config.retention_days:g} days after their job finishes", 429)


def _job(service: Service, who: str, job_id: str) -> JobView:
    found = service.store.get(who, job_id)
    if found is None:
        raise HTTPException(404, f"no job {job_id}")
    return found


def _members(service: Service, who: str, batch_id: str) -> list[JobView]:
    members = service.store.batch_jobs(who, batch_id)
    if not members:
        raise HTTPException(404, f"no batch {batch_id}")
    return members


def _report(service: Service, who: str, members: list[JobView]):
    """The batch's combined sizing, None while it runs; 409 if its catalog went missing."""
    catalog = service.catalogs.get(members[0].options.get("catalog", "default"))
    try:
        return combined_report(service.store, who, members, catalog)
    except UserError as exc:
        raise HTTPException(409, f"cannot size the batch: {exc}") from None


def _batch(service: Service, who: str, batch_id: str) -> BatchOut:
    members = _members(service, who, batch_id)
    report = _report(service, who, members)
    done = all(m.state in FINISHED for m in members)
    return BatchOut(id=batch_id, state="done" if done else "running", jobs=[view(m) for m in members],
                    report=report.document if report else None)


def _file(data: Optional[bytes], name: str, missing: str) -> Response:
    if data is None:
        raise HTTPException(404, missing)
    media = MEDIA.get(Path(name).suffix, "application/octet-stream")
    safe = name if NAME.fullmatch(name) else "download"
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{safe}"'})


class TooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"request body over this server's limit of {limit} bytes")


class BodyLimit:
    """Refuses a request body over `limit` bytes, by its Content-Length or, when it lies or is
    chunked, by counting, before anything parses it."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.limit:
            return await _send_413(send, self.limit)
        seen = 0
        started = False

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise TooLarge(self.limit)
            return message

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except TooLarge:
            if not started:
                await _send_413(send, self.limit)


async def _send_413(send, limit: int) -> None:
    body = json.dumps({"detail": TooLarge(limit).detail}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
