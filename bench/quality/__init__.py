"""The labelled real-data quality set and its benchmark (``python -m bench.quality``)."""
