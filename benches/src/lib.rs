//! Benchmarks (criterion, under `benches/benches/`) and load generators.
//! Each figure they produce is recorded in `docs/benchmarks.md` with the
//! command that produced it; `src/` holds what the benches share.
