"""vGPU discovery and lifecycle: which boards a host can cut into vGPUs, and making one.

sysfs.py and nodedev.py read the host (sysfs, or libvirt's node devices) into host.py's
objects; profiles.py says what a type is and which one is a slice of a board; placement.py
picks a board under the one-type-per-board rule; lifecycle.py makes and removes vGPUs;
nvml.py reads what the driver reports; cli.py is `offload vgpu list`. See README.md.
Nothing here imports libvirt or pynvml until a function needs it.
"""
