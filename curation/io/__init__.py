"""Reading sources: files and hub datasets in many formats -> the canonical conversation schema."""
