"""Few-shot learning on the device: embeddings, imprinted heads, `edgecam learn`."""
