"""Models: the runtime, the classifier and its input, labels, downloads."""
