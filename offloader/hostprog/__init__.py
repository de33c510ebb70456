"""The host program: the user's C program built once so that any set of its regions can run
on the device while the rest runs as written.

build.py instruments and compiles it (rewrite.py wraps each region's loop in place, extent.py
finds the loop's text, slots.py and abi.py define what the runtime is handed), runtime.c is
the C side linked in, and runner.py runs the result in a child process with a dispatcher.
Nothing is imported here, so the runner child starts without the C front end.
"""
