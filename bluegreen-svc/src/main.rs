fn main() {
    std::process::exit(bluegreen_svc::cli::main());
}
