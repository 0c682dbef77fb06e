"""nlpflow.training."""
