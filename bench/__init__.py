"""Scale benchmark: a synthetic 100,000-user tenant through the real sync (`make bench`)."""
