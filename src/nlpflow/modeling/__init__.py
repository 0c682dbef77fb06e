"""nlpflow.modeling."""
