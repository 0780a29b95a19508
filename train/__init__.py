"""Training cells with the NAS-Bench-101 protocol (CIFAR-10, RMSProp, cosine decay, pmap)."""
