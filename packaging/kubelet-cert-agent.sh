#!/bin/sh
# /usr/bin/kubelet-cert-agent: run the agent from its self-contained venv.
# -I: ignore PYTHON* variables and the user site (a root daemon must not be steered by them);
# -B: never write byte-code (the package ships it compiled; /opt is read-only for the service).
exec /opt/kubelet-cert-agent/bin/python3 -I -B /opt/kubelet-cert-agent/bin/kubelet-cert-agent "$@"
