"""Spiking neuron models used by the converter (few-spike SI-exp, SI-norm, ...)."""
