"""Corpus folder → documents → passages: reading the articles, their footnotes and references, and splitting them."""
