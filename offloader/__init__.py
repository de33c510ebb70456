"""offload: find C loops that are safe to run on a GPU, run them there, and size the VM.

Importing this package must stay cheap and must not load optional GPU or libvirt
dependencies (pycuda, pynvml, libvirt); tests/test_lazy_imports.py checks that.
"""

__version__ = "0.1.0"
