"""Training with Lightning: the classifier module, its callbacks, the command line and run records.

============================  ================================================
``module``                    :class:`~involution.train.module.ImageClassifier`,
                              the LightningModule: model, loss, metrics, optimiser
``optimization``              optimiser and learning-rate schedule records
``callbacks``                 kernel statistics, instability guards, one line
                              per epoch, predictions to CSV
``checkpoints``               atomic checkpoint writes, clear read errors
``loggers``                   the resumable CSV log, Weights & Biases
``cli``                       ``python -m involution fit|validate|test|predict``
``quiet``                     Lightning's chatter left out of what a run prints
``configs/``                  the shipped recipes (YAML), found by name
``runs/``                     the run folder and its ``results.json``
============================  ================================================

Nothing is imported here: each module needs Lightning (the ``train`` extra)
except ``optimization``, ``configs`` and ``quiet``, and importing one should not
pay for the others.
"""
