"""Spiking neuron models used by the converter (IF, few-spike SI-exp, SI-norm, ...)."""

from snnconvert.neurons import integrate_fire  # noqa: F401  (registers its NeuronKind)
from snnconvert.neurons import masked_if  # noqa: F401  (registers its NeuronKind)
from snnconvert.neurons.kinds import NEURONS, NeuronKind, register_neuron

__all__ = ["NEURONS", "NeuronKind", "register_neuron"]
