"""vGPU profiles from type names and descriptions, and which profile is a slice of a board."""

import pytest

from vgpu.profiles import Profile, SliceError, board_framebuffer_mib, parse_profile, profile_for_slice, same_model

T4_DESCRIPTION = "num_heads=1, frl_config=60, framebuffer=4096M, max_resolution=4096x2160, max_instance=4"


def t4(short: str, framebuffer_mib: int, max_instances: int) -> Profile:
    return parse_profile(f"GRID {short}", f"framebuffer={framebuffer_mib}M, max_instance={max_instances}")


T4_PROFILES = [t4("T4-4C", 4096, 4), t4("T4-8C", 8192, 2), t4("T4-16C", 16384, 1),
               t4("T4-1Q", 1024, 16), t4("T4-2Q", 2048, 8), t4("T4-4Q", 4096, 4), t4("T4-8Q", 8192, 2),
               t4("T4-16Q", 16384, 1), t4("T4-1B", 1024, 16), t4("T4-2B", 2048, 8), t4("T4-2B4", 2048, 8)]


def test_name_and_description_give_the_profile():
    p = parse_profile("GRID T4-4C", T4_DESCRIPTION)
    assert (p.model, p.framebuffer_mib, p.series, p.max_instances, p.short) == ("T4", 4096, "C", 4, "T4-4C")


@pytest.mark.parametrize("name, model, gb, series, slices", [
    ("NVIDIA L4-24Q", "L4", 24, "Q", None),
    ("GRID RTX6000-1Q", "RTX6000", 1, "Q", None),
    ("GRID T4-2B4", "T4", 2, "B", None),            # B profile with four heads
    ("NVIDIA A100-3-20C", "A100", 20, "C", 3),      # MIG-backed: 3 compute slices, 20 GB
    ("GRID V100DX-32A", "V100DX", 32, "A", None),
])
def test_names_alone_are_enough(name, model, gb, series, slices):
    """libvirt and the SR-IOV files give no description: the name must carry the profile."""
    p = parse_profile(name)
    assert (p.model, p.framebuffer_mib, p.series, p.mig_slices, p.max_instances) == (model, gb * 1024, series, slices, None)


@pytest.mark.parametrize("name", ["i915-GVTg_V5_4", "", "GRID T4", "NVIDIA L4-4X"])
def test_other_mdev_types_are_not_profiles(name):
    assert parse_profile(name) is None


def test_a_quarter_of_a_16_GB_T4_is_the_4_GB_compute_profile():
    assert board_framebuffer_mib(T4_PROFILES, "T4") == 16384
    assert profile_for_slice(T4_PROFILES, "T4", 0.25).short == "T4-4C"
    assert profile_for_slice(T4_PROFILES, "T4", 0.5).short == "T4-8C"
    assert profile_for_slice(T4_PROFILES, "T4", 1).short == "T4-16C"


def test_the_series_is_chosen():
    assert profile_for_slice(T4_PROFILES, "T4", 0.25, "Q").short == "T4-4Q"
    assert profile_for_slice(T4_PROFILES, "T4", 1 / 16, "Q").short == "T4-1Q"
    assert profile_for_slice(T4_PROFILES, "T4", 0.125, "B").short == "T4-2B"     # before T4-2B4


def test_no_such_slice_says_what_there_is():
    with pytest.raises(SliceError, match=r"no C-series profile is 1/8 of a T4 .*T4-4C \(1/4\), T4-8C \(1/2\), T4-16C \(1\)"):
        profile_for_slice(T4_PROFILES, "T4", 0.125, "C")
    with pytest.raises(SliceError, match="unknown vGPU series 'X'"):
        profile_for_slice(T4_PROFILES, "T4", 0.25, "X")
    with pytest.raises(SliceError, match="no vGPU profiles of a L4 board"):
        profile_for_slice(T4_PROFILES, "L4", 0.25)


def test_board_size_without_descriptions_is_the_largest_profile():
    names = [parse_profile(f"NVIDIA L4-{gb}C") for gb in (4, 6, 8, 12, 24)]
    assert board_framebuffer_mib(names, "L4") == 24576
    assert profile_for_slice(names, "L4", 0.25).short == "L4-6C"


def test_models_compare_as_drivers_spell_them():
    assert same_model("Tesla T4", "T4") and same_model("NVIDIA L4", "l4") and not same_model("T4", "L4")
