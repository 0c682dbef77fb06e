"""Task families: what differs between tasks (data, model, loss, metrics, reports)."""
