"""The workbook's support: what the notebooks call, so that they hold no code of their own.

===================  ============================================================
``notebook``         set-up: where a notebook runs, fast mode, the work directory
``repository``       the checkout, its layout and its public address
``colab``            the notebooks' Colab lines (``python -m involution set-repo``)
``data_choice``      which data a notebook trains on, and the sentence that says so
``experiments``      training and testing the comparison runs of notebook 02
``course_sets``      what the original course project's runs are, grouped in sets
``course``           runs those sets and tables them (``python -m involution course``)
``results``          results as tables and honest sentences
``weights``          which trained weights a notebook looks at, on which images
``figures``          the notebooks' and slides' figures
``kernel_figures``   generated kernels drawn over the photograph
``diagrams``         the explanatory diagrams (operation, kernel generation, blocks)
``reference``        figures reported by others (the paper, the course project)
``deck``             the slide deck (``python -m involution deck``)
``demo``             ``python -m involution demo``
===================  ============================================================

Every notebook starts with ``wb = workbook.setup()``. The library never
imports this package.
"""
from involution.workbook.notebook import Workbook, batch_run, fast_mode, setup

__all__ = ["Workbook", "setup", "fast_mode", "batch_run"]
