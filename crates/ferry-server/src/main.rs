//! The `ferry` binary: a thin entry point over the CLI.

/// mimalloc: the proxy and sync hot paths allocate small buffers from many threads at once, where
/// glibc's arenas spend a tenth of the CPU and contend on their locks (seen in `perf` profiles
/// of `ferry bench proxy` and `ferry bench sync`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    ferry_server::cli::main()
}
