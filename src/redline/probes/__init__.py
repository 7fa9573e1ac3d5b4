"""Activation probes on open weights: collect, train, evaluate, and run as internal tripwires.

``datasets`` reads the contrastive prompt sets, ``collect`` turns them into per-layer
activations of a local target, ``train`` fits one logistic-regression probe per layer and
calibrates the chosen one on benign controls, ``artefact`` stores it (JSON + .npy) bound to
the model's digest, ``tripwire`` runs it during generation, ``detector`` and ``scorer``
plug it into the guard and the evaluation engine.
"""
