//! Criterion benchmarks of the SGW (data security per operation and size) and the end-to-end
//! throughput run; results live in `docs/PERFORMANCE.md`.
#![forbid(unsafe_code)]
