"""Extractive question answering (SQuAD v1.1 and v2.0 style): the family's library parts.

- :mod:`readers`: SQuAD JSON and JSONL files, checked question by question;
- :mod:`builtin`: the generated ``builtin:qa`` data set;
- :mod:`windows`: question/context windows with a stride, answers as token positions;
- :mod:`postprocess`: n-best spans over all windows of a question, the no-answer rule;
- :mod:`metrics`: SQuAD's normalisation, EM and F1 (HasAns/NoAns), bootstrap intervals,
  the no-answer threshold tuned on validation;
- :mod:`baselines`: always no answer, the sentence with the most question words;
- :mod:`report`: the error analysis (worst answers, slices by question word and length);
- :mod:`model`: ``AutoModelForQuestionAnswering`` and its span loss.
"""
