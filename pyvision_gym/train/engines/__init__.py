"""Generation engines: token ids (and images) in, token ids, log-probs and finish reasons out."""
