"""citeqa: extractive answers with citations from a document corpus."""
