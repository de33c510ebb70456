"""What to deploy: plan.json and sizing.json, or --size and --gpu from a catalog; bad input is one line."""

import json

import pytest
from click.testing import CliRunner

from offloader.cli import main
from deploy_support import SMALL_CATALOG, t4_host, write_plan  # noqa: F401 - fixture
from deployer.request import request_from_size, request_from_sizing


@pytest.fixture
def plan(tmp_path):
    return write_plan(tmp_path / "results" / "saxpy")


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], prog_name="offload")
    return result.exit_code, result.stdout, result.stderr


def test_sizing_gives_vcpus_memory_and_the_profile(plan):
    request = request_from_sizing(plan, plan.with_name("sizing.json"), None)
    assert (request.app, request.vcpus, request.memory_mib, request.gpu_fraction, request.vgpu_profile,
            request.gpu_model, request.series) == ("saxpy", 2, 256, 0.25, "T4-4C", "T4", "C")


def test_another_series_is_looked_up_on_the_host(plan, t4_host):
    request = request_from_sizing(plan, plan.with_name("sizing.json"), "Q")
    assert (request.vgpu_profile, request.series) == (None, "Q")
    code, out, err = run("deploy", plan, "--series", "q", "--dry-run", "--json", "--connect", "test:///default",
                         "--sysfs-root", t4_host.root)
    assert code == 0, err
    assert json.loads(out)["vgpu"]["type_name"] == "GRID T4-4Q"


def test_a_size_and_a_share_from_a_catalog(plan):
    request = request_from_size(plan, "small", "1/4", str(SMALL_CATALOG), None)
    assert (request.vcpus, request.memory_mib, request.gpu_fraction, request.vgpu_profile) == (2, 512, 0.25, "T4-4C")
    cpu_only = request_from_size(plan, "tiny", "0", str(SMALL_CATALOG), None)
    assert (cpu_only.vcpus, cpu_only.memory_mib, cpu_only.gpu_fraction, cpu_only.vgpu_profile) == (1, 256, None, None)


@pytest.mark.parametrize("change, args, message", [
    ({"app": "../etc"}, [], "plan.json: `app` must be a short name (letters, digits, -, _, .), got '../etc'"),
    ({"schema": "1"}, [], "plan.json: `schema` must be an integer (the plan format's version)"),
    (None, ["--size", "small"], "--size and --gpu go together, instead of --from-sizing"),
    (None, ["--size", "huge", "--gpu", "1/4", "--catalog", SMALL_CATALOG],
     "catalog-small.toml: no CPU size 'huge' in the catalog (sizes: tiny, small)"),
    (None, ["--size", "small", "--gpu", "2", "--catalog", SMALL_CATALOG],
     "`--gpu` must be a share of a GPU between 0 and 1 (0.25 or 1/4), got '2'"),
    (None, ["--series", "Z"], "--series must be one of C, Q, B, A (got 'Z')"),
    (None, ["--image", "disk.qcow2", "--kernel", "vmlinuz"], "give --image or --kernel, not both"),
    (None, ["--kernel", "missing-vmlinuz"], "missing-vmlinuz: --kernel: no such file"),
    (None, ["--initrd", "x"], "--initrd goes with --kernel"),
])
def test_bad_input_is_one_line_and_status_2(plan, change, args, message):
    if change:
        data = json.loads(plan.read_text())
        data.update(change)
        plan.write_text(json.dumps(data))
    code, out, err = run("deploy", plan, "--connect", "test:///default", *args)
    assert code == 2 and out == ""
    assert err.startswith("offload: ") and err.endswith(message + "\n") and err.count("\n") == 1, err


def test_sizing_files_that_cannot_be_used(plan):
    sizing = plan.with_name("sizing.json")
    sizing.write_text(json.dumps({"schema": 1, "app": "saxpy", "recommendation": None}))
    code, _, err = run("deploy", plan, "--connect", "test:///default")
    assert (code, err) == (2, f"offload: {sizing}: has no `recommendation` (nothing was feasible?); "
                              "choose with --size and --gpu\n")
    sizing.write_text(json.dumps({"schema": 1, "app": "nbody", "recommendation": {
        "vcpus": 2, "memory_gib": 1, "fraction": 0.5, "vgpu_type": "T4-8C"}}))
    code, _, err = run("deploy", plan, "--connect", "test:///default")
    assert (code, err) == (2, f"offload: {sizing}: is the sizing of 'nbody', but the plan is 'saxpy'\n")
    sizing.unlink()
    code, _, err = run("deploy", plan, "--connect", "test:///default")
    assert (code, err) == (2, f"offload: no {sizing}: give --from-sizing SIZING.json, or --size NAME --gpu FRACTION\n")
