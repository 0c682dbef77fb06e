"""nlpflow.data."""
