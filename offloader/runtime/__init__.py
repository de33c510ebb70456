"""Running a program with a chosen set of regions on a device, verified against the CPU.

The parent (run.py) analyses, generates kernels and builds one host library; a child process
(the hostprog runner with the device dispatcher of dispatcher.py) runs it, so a crash, hang or
exit() in user code never takes `offload` down and statistics are still written at exit.
"""
