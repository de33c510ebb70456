"""KVM deployment through libvirt with an mdev vGPU (issue 6; not built yet)."""
