//! The library version of `backbone init` that detection's and segmentation's tests use
//! (tests/common/classifier_init.rs) writes the same checkpoint as the command: the same
//! tensors, byte for byte, and the same metadata.

#[path = "common/classifier_init.rs"]
mod classifier_init;

use e2e::tiny::SafetensorsFile;

#[test]
fn the_library_init_writes_what_backbone_init_writes() {
    let dir = tempfile::tempdir().unwrap();
    for (classes, side) in [(3, 32), (10, 32)] {
        let by_command = dir.path().join(format!("command-{classes}.safetensors"));
        e2e::run_ok(
            e2e::bin!("backbone"),
            &[
                "init",
                "--arch",
                "resnet18",
                "--num-classes",
                &classes.to_string(),
                "--input-size",
                &side.to_string(),
                by_command.to_str().unwrap(),
            ],
        );
        let by_library = dir.path().join(format!("library-{classes}.safetensors"));
        classifier_init::init_classifier(&by_library, "resnet18", classes, side);
        let (a, b) = (
            SafetensorsFile::read(&by_command),
            SafetensorsFile::read(&by_library),
        );
        // The metadata map is a HashMap when written, so compare it parsed, not as bytes.
        assert_eq!(a.header, b.header, "{classes} classes: headers differ");
        assert!(a.data == b.data, "{classes} classes: tensor bytes differ");
    }
}
