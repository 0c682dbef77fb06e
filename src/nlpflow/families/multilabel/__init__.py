"""Multi-label classification: a list of labels per example, sigmoid outputs and BCE.

Modules: ``labels`` (reading and checking label lists), ``generator`` (the built-in data
set), ``thresholds`` (decision thresholds tuned on validation), ``metrics`` (F1 averages,
Hamming loss, subset accuracy, LRAP, with bootstrap intervals), ``baselines`` (label
frequencies, one-vs-rest TF-IDF + logistic regression) and ``error_report`` (missed and spurious
labels, the worst examples, label co-occurrence).
"""
