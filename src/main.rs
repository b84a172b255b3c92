fn main() -> std::process::ExitCode {
    airgap::run()
}
