"""Calibration of AtomSim's emulated latencies against one physical board.

Measurements made on a board (today: imported from a CSV in the paper's layout; later: over a
serial port) are matched to atoms, the same atoms are run on the emulated board for their
features (cycles, instructions, bytes, memory traffic per region), and small correction models
per atom class map emulated figures to the board's latency, each prediction with an interval.
Calibrations and calibrated latencies are recorded in AtomDB next to the raw measurements.

This package imports :mod:`atomsim`; :mod:`atomsim` never imports it. No torch here.
"""
