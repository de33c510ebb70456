"""The catalog: the shipped default, and bad catalogs rejected with the field named, never a traceback."""

import re

import pytest
from sizing_support import catalog_text, invoke, run_offload, write_profile

from offloader.errors import UserError
from sizing.catalog import DEFAULT_CATALOG, load_catalog


def test_default_catalog_mirrors_the_seed_setup():
    cat = load_catalog()
    assert cat.path == str(DEFAULT_CATALOG) and cat.model == "T4" and cat.board.memory_gib == 16
    assert [(c.name, c.vcpus, c.price_per_hour) for c in cat.cpus] == [
        ("half", 1, 0.05), ("standard", 2, 0.10), ("double", 4, 0.20)]
    assert [(g.fraction, g.framebuffer_gib, g.max_instances, g.price_per_hour) for g in cat.gpus] == [
        (0.25, 4, 4, 0.15), (0.5, 8, 2, 0.30), (1.0, 16, 1, 0.60)]
    assert cat.policy == "best-effort"
    assert "example numbers" in DEFAULT_CATALOG.read_text().lower()


def _gpu(**changes):
    base = dict(name="quarter-T4", fraction=0.25, framebuffer_gib=4, vgpu_type="T4-4C", max_instances=4,
                price_per_hour=0.15)
    base.update(changes)
    return [{k: v for k, v in base.items() if v is not None}]


BAD = [
    (catalog_text(gpus=_gpu(price_per_hour=-1)),
     r"\[\[gpu\]\] #1 'quarter-T4': price_per_hour must be a positive number, got -1"),
    (catalog_text(gpus=_gpu(price_per_hour="cheap")), r"price_per_hour must be a positive number, got 'cheap'"),
    (catalog_text(gpus=_gpu(fraction=1.5)), r"fraction must be a positive number and at most 1, got 1.5"),
    (catalog_text(gpus=_gpu(max_instances=0)), r"max_instances must be an integer >= 1"),
    (catalog_text(gpus=_gpu(vgpu_type=None)), r"\[\[gpu\]\] #1 'quarter-T4': vgpu_type is missing"),
    (catalog_text(gpus=_gpu(framebuffer_gib=32)), r"framebuffer_gib 32 is more than the T4's 16 GiB"),
    (catalog_text(gpus=_gpu(name=None)), r"\[\[gpu\]\] #1: name is missing"),
    (catalog_text(gpus=_gpu() + [dict(_gpu(name="big", model="A100")[0])]),
     r"#2 'big': model 'A100' differs from the first entry's 'T4'"),
    (catalog_text(gpus=_gpu() + _gpu()), r"two entries are named 'quarter-T4'"),
    (catalog_text(policy="round-robin"), r"\[scheduler\]: policy must be one of equal-share, fixed-share, "
                                         r"best-effort, mig; got 'round-robin'"),
    (catalog_text(policy="mig"), r"policy 'mig' is refused: the T4 has no MIG"),
    (catalog_text(policy="mig", model="A100", gpus=_gpu(name="1g", framebuffer_gib=5, compute_fraction="1/7")),
     r"'1g': memory_fraction is missing \(needed by the mig scheduler policy"),
    (catalog_text(policy="mig", model="A100",
                  gpus=_gpu(name="1g", framebuffer_gib=5, compute_fraction=0.2, memory_fraction="1/8")),
     r"compute_fraction must be a multiple of 1/7"),
    (catalog_text().replace('[scheduler]\npolicy = "best-effort"\n', ""), r"\[scheduler\] is missing"),
    (catalog_text().replace("vcpus = 2", "vcpus = 2.5"), r"\[\[cpu\]\] #2 'standard': vcpus must be an integer"),
    (catalog_text().replace("[[gpu]]", "[[gpux]]"), r"gpu is missing"),
    ("[[cpu]\nname = 1\n", r"not valid TOML: .*line 1"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_catalog_names_the_field(tmp_path, text, message):
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    with pytest.raises(UserError) as caught:
        load_catalog(path)
    assert re.search(message, str(caught.value)), str(caught.value)
    assert str(caught.value).startswith(str(path))


def test_mig_catalog_accepts_sevenths_and_eighths(tmp_path):
    path = tmp_path / "a100.toml"
    path.write_text(catalog_text(policy="mig", model="A100", gpus=[
        dict(name="1g.5gb", fraction=0.125, framebuffer_gib=5, vgpu_type="A100-1-5C", max_instances=7,
             price_per_hour=0.2, compute_fraction="1/7", memory_fraction=0.125)]))
    gpu = load_catalog(path).gpus[0]
    assert gpu.compute_fraction == pytest.approx(1 / 7) and gpu.memory_fraction == 0.125


def test_bad_catalog_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    profile = write_profile(tmp_path / "app")
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(catalog_text(policy="mig"))
    done = run_offload("size", profile, "--catalog", catalog)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"offload: {catalog}: [scheduler] policy 'mig' is refused: the T4 has no MIG " \
                                   "(use equal-share, fixed-share or best-effort)"
    result = invoke("size", profile, "--catalog", tmp_path / "nowhere.toml")
    assert result.exit_code == 2 and "no such catalog file" in result.stderr
