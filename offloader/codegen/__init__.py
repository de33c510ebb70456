"""Kernel generation: offload regions of an analysed program become CUDA C++ kernels, each with
a plain-C twin of the same loop for verification (see regions.py, kernel.py, cpu_twin.py)."""
