"""Finding the best items for a vector: exact top-n over a score array, and the HNSW index
(FAISS) that large catalogs are searched with."""
