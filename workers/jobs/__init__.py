"""arq jobs, one module each. Every job is idempotent: arq may run it more than once."""
