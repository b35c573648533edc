"""Calibration: streaming activation statistics used to set spiking thresholds."""
