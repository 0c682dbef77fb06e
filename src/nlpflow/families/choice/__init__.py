"""Multiple choice: a context and N options, one of them right (``label``: its index).

The processed rows of this family have one schema, whatever the source wrote: ``context`` (one
string), ``options`` (N strings, N the same for every row of a data set), ``label`` (the index of
the right option, from 0), and ``_line`` (the source line) plus any metadata columns. The model
is ``AutoModelForMultipleChoice``: each (context, option) pair is encoded as one sequence, a
batch is ``(B, N, T)`` and the head gives one score per option, ``(B, N)``, softmaxed over the
options.

The four sides of the family interface (:mod:`nlpflow.families`): ``data`` (reading,
labels as positions, cleaning, the nested tokenized columns), ``model``
(``AutoModelForMultipleChoice``), ``train`` (``(B, N, T)`` batches, the probe's worst case),
``evaluate`` (metrics, baselines, predictions, plots, the error report). The library parts
they call: ``config`` (the ``data.choice`` params), ``reader`` (files and their validation),
``builtin`` (the generated data set), ``encoding`` (pairs to ``(N, T)`` ids, padding to
``(B, N, T)``), ``metrics`` (accuracy with intervals, per gold position), ``baselines`` (the
known artefacts: answer position, option length, word overlap), ``report`` (the error report).
"""

from __future__ import annotations

CONTEXT = "context"
OPTIONS = "options"
LABEL = "label"
