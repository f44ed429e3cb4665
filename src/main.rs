//! The `portcullis` binary: everything lives in the library; see `cli`.

// glibc malloc showed up at ~6% of proxy CPU (consolidation, arena locks); mimalloc's
// thread-local free lists fit a request-per-task server better.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    portcullis::cli::main()
}
