"""Global dedup stages: exact (normalized key) and near (MinHash + LSH, verified, union-find)."""
