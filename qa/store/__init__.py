"""The index, whichever backend holds it (a FAISS folder or PostgreSQL), its BM25, and the embedding model."""
