"""Input data files (.npz keyed by the model's input names, `y` for labels) and the built-in example."""
