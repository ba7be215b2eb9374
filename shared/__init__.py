"""emply-entra-sync: the one reconcile package both Functions triggers call."""
