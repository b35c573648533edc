"""Operation counting per layer (ANN MACs, SNN ACs from measured events, analog MACs) and energy."""
