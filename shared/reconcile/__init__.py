"""The pure core: snapshots in, plan out. No I/O, no clock, no Azure or Graph imports."""
