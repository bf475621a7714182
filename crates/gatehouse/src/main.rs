fn main() -> std::process::ExitCode {
    gatehouse::run()
}
