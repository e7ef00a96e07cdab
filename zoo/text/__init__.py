"""Text handling: the poem LMs' tokenizers, the shared prompt encoder, and cached caption embeddings."""
