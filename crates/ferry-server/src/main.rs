//! The `ferry` binary: a thin entry point over the CLI.

fn main() -> anyhow::Result<()> {
    ferry_server::cli::main()
}
