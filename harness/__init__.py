"""What drives the product from outside, never imported by its commands at start:
the local process runner of the integration tests and `bench-api --start`
(`local_stack`), and the benchmark library behind `avatar-prep bench` and
`bench-api` (`bench`, `stage_timing`, `bench_api`, `bench_sessions`, `load`)."""
