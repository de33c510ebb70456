"""The GPU check's parts (scripts/gpu-check.sh runs benchmarks/gpu_check.py, which runs them).

boxes: time boxes around each step's process group; record: the result file and its header;
sizes: the samples' sizes on the GPU and in the dry run; one module per step."""
