"""The only layer that touches devices: drivers, fan-out, ansible-runner."""
