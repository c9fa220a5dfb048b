"""Token counts through a chat template: tokenizer loading, the fast BPE path, and their caches."""
