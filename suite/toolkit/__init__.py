"""What tasks are built from: heads, pooling, batching, text vocabularies, the CRF, the seq2seq
head with attention and decoding, metrics, and the dataset catalog. Sees only the core."""
