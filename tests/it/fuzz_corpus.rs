//! Replays every input in the fuzz corpus (`fuzz/corpus/`) through the fuzz targets'
//! checks, on the stable toolchain, in every test run: seeds from the protocol
//! document's examples, and whatever fuzzing has found since.

use std::path::Path;

use caucus_tests::fuzzing;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&folder).unwrap_or_else(|err| panic!("{}: {err}", folder.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target} fails on {}", path.display());
        count += 1;
    }
    count
}

#[test]
fn the_fuzz_corpus_replays_cleanly() {
    assert!(
        replay("client_frame", fuzzing::client_frame) >= 30,
        "the client frame corpus has the protocol's examples"
    );
    assert!(replay("hello", fuzzing::hello) >= 2);
    assert!(replay("api_bodies", fuzzing::api_bodies) >= 2);
}
