"""Small reference models trained on scikit-learn digits, shipped as ONNX so tests and the demo run offline."""
