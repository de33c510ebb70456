"""profile.json: bad profiles get one line naming the file and field; missing parts are explained."""

import json
import re

import pytest
from sizing_support import invoke, profile_doc, run_offload, write_profile

from offloader.errors import UserError
from sizing.catalog import load_catalog
from sizing.profile import load_profile
from sizing.sizer import size

BAD = [
    (dict(schema=None), r"schema is missing"),
    (dict(schema=7), r"schema 7 is newer than this offload understands"),
    (dict(cpu_part_seconds=-3), r"cpu_part_seconds must be a number >= 0, got -3"),
    (dict(gpu_kernel_seconds="fast"), r"gpu_kernel_seconds must be a number >= 0, got 'fast'"),
    (dict(kind="guessed"), r"kind must be one of measured, modeled, emulated; got 'guessed'"),
    (dict(threads_used_by_cpu_part=0), r"threads_used_by_cpu_part must be an integer >= 1"),
    (dict(regions=[{"id": 0, "kernel_seconds": 1, "flops": "many", "bytes": 8}]),
     r"regions\[0\]: flops must be a number >= 0, got 'many'"),
    (dict(regions=[{"id": 0}]), r"regions\[0\]: kernel_seconds is missing"),
    (dict(regions={"id": 0}), r"regions must be a list"),
    (dict(cpu_scaling={"two": {"seconds": 1, "kind": "measured"}}), r"cpu_scaling: keys must be core counts"),
    (dict(cpu_scaling={"1": {"seconds": 0, "kind": "measured"}}),
     r"cpu_scaling\['1'\]: seconds must be a positive number"),
    (dict(cpu_scaling={"1": {"seconds": 1, "kind": "guessed"}}), r"cpu_scaling\['1'\]: kind must be one of"),
    (dict(cpu_scaling={"4": {"seconds": 1, "kind": "extrapolated"}}), r"cpu_scaling: has no measured point"),
]


@pytest.mark.parametrize("fields,message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_profile_names_the_field(tmp_path, fields, message):
    path = write_profile(tmp_path, **fields)
    with pytest.raises(UserError) as caught:
        load_profile(path)
    assert re.search(message, str(caught.value)) and str(caught.value).startswith(str(path)), str(caught.value)


NOT_SIZABLE = [
    (dict(kind=None, device=None, gpu_kernel_seconds=None, transfer_seconds=None, device_memory_bytes=None,
          cpu_part_seconds=None, host_memory_bytes=None, threads_used_by_cpu_part=None,
          cpu_scaling={"1": {"seconds": 1.0, "kind": "measured"}}),
     r"cannot size without kind, device, gpu_kernel_seconds, .*the GPU times come from `offload tune`"),
    (dict(kind="emulated", device="emulated"), r"kind is 'emulated': its kernel times are CPU times"),
    (dict(threads_used_by_cpu_part=4), r"cpu_scaling is missing, and the CPU part uses 4 threads: run "
                                       r"`offload profile"),
    (dict(device="Radeon VII"), r"the profile's device 'Radeon VII' is not in the GPU model table"),
    (dict(device="NVIDIA H200"), r"regions \(with flops and bytes\) are needed to translate GPU times from "
                                 r"NVIDIA H200 to T4"),
    (dict(device="NVIDIA H200", regions=[{"id": 0, "kernel_seconds": 20}]),
     r"regions\[0\]: flops and bytes are needed to translate"),
    (dict(regions=[{"id": 0, "kernel_seconds": 25}]), r"kernel_seconds add up to 25 s, more than gpu_kernel_seconds"),
    (dict(gpu_kernel_seconds=0), r"nothing runs on the GPU"),
]


@pytest.mark.parametrize("fields,message", NOT_SIZABLE, ids=[m[:40] for _, m in NOT_SIZABLE])
def test_profiles_that_cannot_be_sized_say_why(tmp_path, fields, message):
    path = write_profile(tmp_path, **fields)
    with pytest.raises(UserError) as caught:
        size(load_profile(path), load_catalog())
    assert re.search(message, str(caught.value)), str(caught.value)


def test_bad_profile_files_on_the_command_line(tmp_path):
    missing = tmp_path / "nowhere" / "profile.json"
    result = invoke("size", missing)
    assert result.exit_code == 2 and result.stderr == f"offload: {missing}: no such profile\n"
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": 1,')
    done = run_offload("size", broken)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert re.fullmatch(rf"offload: {re.escape(str(broken))}: not valid JSON: .*line 1.*\n", done.stderr)
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([profile_doc()]))
    result = invoke("size", listed)
    assert result.exit_code == 2 and "the profile must be a JSON object" in result.stderr


def test_neither_or_both_inputs(tmp_path):
    assert invoke("size").exit_code == 2
    result = invoke("size", write_profile(tmp_path), "--batch", tmp_path / "jobs.csv")
    assert result.exit_code == 2 and "either a PROFILE.json or --batch" in result.stderr


def test_a_results_directory_and_whole_floats_are_accepted(tmp_path):
    path = write_profile(tmp_path / "app", device_memory_bytes=3e9)
    assert load_profile(path).device_memory_bytes == 3_000_000_000
    result = invoke("size", path.parent, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["profile"] == str(path)
