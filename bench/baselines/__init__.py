"""Servers to compare our hub with: a bare relay on the same stack and a python-socketio peer."""
