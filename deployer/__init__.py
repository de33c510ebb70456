"""Deployment of the sized VM on KVM through libvirt, with its vGPU, verified from inside.

request.py reads plan and size; domain_xml.py writes and validates the domain; deploy.py
runs the steps with journal.py's write-ahead journal and rollback.py's undo; guest_report.py
and verify.py judge what the guest reports; manage.py is list, destroy and gc;
probe_guest.py builds a guest that reports and powers off; cli.py is `offload deploy`.
See README.md. Nothing here imports libvirt until a function needs it.
"""
