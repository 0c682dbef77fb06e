"""nlpflow: a reproducible NLP training pipeline built on DVC."""

__version__ = "0.1.0"
