"""The validation split and the mix of sources in the proportions asked for."""
