"""Pure functions: inventory -> intended state and rendered configs. No sockets, no subprocesses."""
