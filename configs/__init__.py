"""ml_collections configs: ``nasbench101`` (the paper) and ``cpu_tiny`` (tests, CPUs)."""
