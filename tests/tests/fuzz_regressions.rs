//! Every input kept in `fuzz/regressions/<target>/` (seeds, and any crash `scripts/fuzz.sh` found)
//! replays through what its fuzz target runs: none may panic.

use std::path::Path;

#[test]
fn fuzz_inputs_replay_without_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    type Target = fn(&[u8]);
    let targets: [(&str, Target); 2] = [("request", sshca_tests::fuzzing::request), ("certificate", sshca_tests::fuzzing::certificate)];
    for (target, run) in targets {
        let inputs: Vec<_> = std::fs::read_dir(root.join(target)).unwrap().map(|entry| entry.unwrap().path()).collect();
        assert!(!inputs.is_empty(), "no inputs for {target} in {}", root.display());
        for input in inputs {
            run(&std::fs::read(&input).unwrap());
        }
    }
}
