"""Text-to-text: an ``input`` text in, a ``target`` text out (generation).

Modules, each usable without DVC:

- :mod:`.params`: the family's parameters (built-in data, model kind, prompt, generation);
- :mod:`.data`: reading ``input``/``target`` files and the built-in generated task;
- :mod:`.metrics`: exact match, token F1, ROUGE, BLEU, chrF, perplexity, with bootstrap intervals;
- :mod:`.outputs`: parsing a generated label, the failure kinds of a generation, baselines;
- :mod:`.encoding`: the tokenizer and the one encoder of prompts and targets;
- :mod:`.tokenize`: the tokenize stage's work (ids per split, length and truncation figures);
- :mod:`.modeling`: encoder-decoder and decoder-only models, batches, losses, generation,
  the prompted baseline;
- :mod:`.evaluation`: a split's metrics beside the baselines, failures, worst generations,
  slices; a label task written out and parsed back.
"""

INPUT_FIELD = "input"
TARGET_FIELD = "target"
