"""Offline tools run from the repository root (not part of the installed package).

    python -m tools.fit_siexp     refit the SI-exp tables (snnconvert/neurons/siexp_tables.json; needs scipy)
    python -m tools.train_zoo     retrain the zoo models (snnconvert/zoo/*.onnx, zoo.json, data/digits_*.npz,
                                  data/text_*.npz; needs scikit-learn); --model NAME retrains one

Their outputs are shipped with the package as data; nothing in ``snnconvert`` imports these modules.
"""
