"""The task families nlpflow knows, by the name ``DataMeta.task`` stores (``meta.json``).

Kept apart from the registries (``families/data.py``, ``model.py``, ``train.py``,
``evaluate.py``) so that :mod:`nlpflow.data.saved` and :mod:`nlpflow.params` can check a
name without importing any family's code: a new family adds its name here.
"""

from __future__ import annotations

TASKS: tuple[str, ...] = (
    "sequence",  # one label per text or text pair (nlpflow's first task)
    "token",  # one tag per word (BIO entities)
    "regression",  # one number per text or text pair
    "qa",  # extractive question answering: a span of the context, or no answer
    "text2text",  # a target text generated from an input text
    "multilabel",  # a list of labels per text (sigmoid outputs, BCE)
    "choice",  # a context and N options, one right (label: its index)
)
# Tasks whose meta.json label_names are classes (at least 2 of them).
# (multilabel: one label may do; choice: the positions "0".."N-1", N >= 2)
CLASSIFICATION_TASKS: tuple[str, ...] = ("sequence", "token", "choice")
