"""nlpflow.evaluation."""
