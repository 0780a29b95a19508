"""JAX-native NAS algorithms over batched, jit-able NAS-Bench queries."""
