"""vGPU discovery through sysfs mdev and NVML (issue 6; not built yet)."""
