"""What a job may ask for, checked at the door: the options (a closed schema) and the uploaded
files (C text only, plain relative names, size-capped). A request that fails here never reaches
the store; every message names the field or file at fault in one line."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .config import UploadLimits

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}")
DEFINE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}(=[^\n\r\0]{0,200})?")
SUFFIXES = (".c", ".h")
MAX_DEPTH = 4


class BadRequest(Exception):
    """A client mistake: `status` 400 (malformed), 413 (too large), 429 (quota)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class JobOptions(BaseModel):
    """Build and tune options of one job, and the sizing constraints; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    include_dirs: list[str] = Field(default_factory=list, max_length=16,
                                    description="-I folders, relative to the uploaded files")
    defines: list[str] = Field(default_factory=list, max_length=64, description="-D NAME[=VALUE]")
    cflags: str = Field("", max_length=500, description="extra compiler flags, each starting with '-'")
    args: list[str] = Field(default_factory=list, max_length=8,
                            description="argument sets for the program, each quoted as on a shell line")
    strategy: Literal["default", "ga", "exhaustive"] = "default"
    budget: int = Field(8, ge=1, description="unique measurements allowed")
    time_limit: Optional[float] = Field(None, gt=0, description="seconds of search")
    device: Literal["auto", "cuda", "emu"] = "auto"
    gpu_model: Optional[str] = Field(None, pattern=r"^[a-z0-9]{1,20}$")
    catalog: str = Field("default", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="a catalog on the server")
    max_price: Optional[float] = Field(None, gt=0, le=1e9, description="price cap per hour")
    deadline: Optional[float] = Field(None, gt=0, le=1e9, description="seconds per run at most")

    @field_validator("include_dirs")
    @classmethod
    def _dirs(cls, dirs: list[str]) -> list[str]:
        for d in dirs:
            if d not in (".", "") and not _safe_path(d):
                raise ValueError(f"{d!r} must be a relative folder among the uploaded files")
        return dirs

    @field_validator("defines")
    @classmethod
    def _defines(cls, defines: list[str]) -> list[str]:
        for d in defines:
            if not DEFINE.fullmatch(d):
                raise ValueError(f"{d!r} is not NAME or NAME=VALUE")
        return defines

    @field_validator("cflags")
    @classmethod
    def _cflags(cls, cflags: str) -> str:
        for flag in _split(cflags, "cflags"):
            if not flag.startswith("-") or flag.startswith("-o"):
                raise ValueError(f"{flag!r}: only options starting with '-' (and not -o) are allowed")
        return cflags

    @field_validator("args")
    @classmethod
    def _args(cls, sets: list[str]) -> list[str]:
        for text in sets:
            if len(text) > 1000 or "\0" in text:
                raise ValueError("each argument set is at most 1000 characters of text")
            _split(text, "args")
        return sets


def _split(text: str, what: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot split {what} like a shell line: {exc}") from None


def parse_options(text: str, max_budget: int, max_time_limit: float, defaults: Optional[dict] = None) -> JobOptions:
    """JSON text to JobOptions (over `defaults`), or BadRequest with the first problem in one line."""
    import json

    try:
        raw = json.loads(text or "{}")
    except ValueError as exc:
        raise BadRequest(f"options: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise BadRequest("options: expected a JSON object like {\"budget\": 4}")
    try:
        options = JobOptions.model_validate({**(defaults or {}), **raw})
    except ValidationError as exc:
        raise BadRequest("options: " + describe(exc)) from None
    if options.budget > max_budget:
        raise BadRequest(f"options: budget {options.budget} is over this server's limit of {max_budget}")
    if options.time_limit is not None and options.time_limit > max_time_limit:
        raise BadRequest(f"options: time_limit {options.time_limit:g} s is over this server's limit of "
                         f"{max_time_limit:g} s")
    return options


def describe(exc: ValidationError) -> str:
    """The first error of a pydantic validation, as `field: what`."""
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"] if p != "body") or "value"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


def check_files(uploads: list[Upload], limits: UploadLimits) -> dict[str, bytes]:
    """The job's files by relative name, in upload order (the first .c names the app)."""
    if not uploads:
        raise BadRequest("no files: upload at least one C source (.c)")
    if len(uploads) > limits.max_files:
        raise BadRequest(f"{len(uploads)} files: at most {limits.max_files} per job", 413)
    files: dict[str, bytes] = {}
    total = 0
    for upload in uploads:
        name = upload.name
        if not _safe_path(name):
            raise BadRequest(f"file name {name!r}: use a plain relative name like app.c or include/util.h")
        if not name.endswith(SUFFIXES):
            raise BadRequest(f"{name}: only C sources (.c) and headers (.h) are accepted")
        if name in files:
            raise BadRequest(f"{name}: uploaded twice")
        if len(upload.data) > limits.max_file_bytes:
            raise BadRequest(f"{name}: {len(upload.data)} bytes, over the limit of {limits.max_file_bytes} "
                             "bytes per file", 413)
        total += len(upload.data)
        if total > limits.max_job_bytes:
            raise BadRequest(f"the files add up to over {limits.max_job_bytes} bytes, this server's limit "
                             "per job", 413)
        if b"\0" in upload.data:
            raise BadRequest(f"{name}: binary data, not C source text")
        try:
            upload.data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"{name}: not UTF-8 text; C sources must be text") from None
        files[name] = upload.data
    if not any(n.endswith(".c") for n in files):
        raise BadRequest("no C source: upload at least one .c file")
    return files


def _safe_path(name: str) -> bool:
    parts = name.split("/")
    return 0 < len(parts) <= MAX_DEPTH and all(NAME.fullmatch(p) and p not in (".", "..") for p in parts)


# ---------------------------------------------------------------------------- command lines

SRC, OUT = "src", "out"


def tune_argv(python: str, files: dict[str, bytes], options: JobOptions, device: str,
              run_timeout: float) -> list[str]:
    """`offload tune` for a job laid out as src/ (the uploads) and out/ (the results), relative
    to the job folder the sandbox runs in."""
    argv = [python, "-m", "offloader", "tune", *(f"{SRC}/{n}" for n in files if n.endswith(".c"))]
    for d in options.include_dirs:
        argv += ["-I", str(PurePosixPath(SRC) / d)]
    for d in options.defines:
        argv += ["-D", d]
    if options.cflags:
        argv += ["--cflags", options.cflags]
    argv += ["--strategy", options.strategy, "--budget", str(options.budget), "--device", device,
             "--out", OUT, "--timeout", f"{run_timeout:g}"]
    if options.gpu_model:
        argv += ["--gpu-model", options.gpu_model]
    if options.time_limit:
        argv += ["--time-limit", f"{options.time_limit:g}"]
    for text in options.args:
        argv += ["--args", text]
    return argv


def size_argv(python: str, options: JobOptions, catalog: Optional[str]) -> list[str]:
    argv = [python, "-m", "offloader", "size", f"{OUT}/profile.json", "--json", "--out", OUT]
    if catalog:
        argv += ["--catalog", catalog]
    if options.max_price is not None:
        argv += ["--max-price", repr(options.max_price)]
    if options.deadline is not None:
        argv += ["--deadline", repr(options.deadline)]
    return argv
