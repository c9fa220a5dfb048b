"""Diversity: task types per row, and the metrics of a set of rows (entropy, distinct-n, lengths)."""
