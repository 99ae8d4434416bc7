"""The embedded default: a city transit agency's Q&A assistant and its world change."""
