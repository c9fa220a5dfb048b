"""Running the pipeline: the run itself (pipeline.py), the local and Ray executors, staging,
checkpoints, assembling and writing shards, verify, and the runtime settings of worker processes."""
