//! comp4 files: what the writer writes reads back bit for bit, and each kind of bad file or
//! line is refused with its file (and line) named.

use detection::metrics::comp4::{self, Comp4Error};
use detection::metrics::voc::{GroundTruth, VocEvaluator, VocMetric};
use detection::metrics::ImageDetections;
use std::path::Path;

fn classes() -> Vec<String> {
    ["cat", "dog", "bird"].map(String::from).to_vec()
}

/// Two images with one cat each (0-based continuous [0, 0, 10, 10] and [5, 5, 25, 15]).
fn evaluator() -> VocEvaluator {
    let mut ev = VocEvaluator::new(classes());
    for (id, bbox) in [
        ("000001", [1.0, 1.0, 10.0, 10.0]),
        ("000002", [6.0, 6.0, 25.0, 15.0]),
    ] {
        let gt = GroundTruth {
            bbox,
            class: 0,
            difficult: false,
        };
        ev.add_image(id, &[gt]).unwrap();
    }
    ev
}

fn write(dir: &Path, class: &str, text: &str) {
    std::fs::write(dir.join(comp4::file_name("test", class)), text).unwrap();
}

#[test]
fn written_files_read_back_the_same_boxes_and_scores() {
    let dir = tempfile::tempdir().unwrap();
    let first = ImageDetections {
        boxes: vec![[0.0, 0.0, 10.0, 10.0], [0.1, 0.7, 3.3, 9.9]],
        scores: vec![0.9, 0.123_456_79],
        classes: vec![0, 1],
    };
    let second = ImageDetections {
        boxes: vec![[5.0, 5.0, 25.0, 15.0]],
        scores: vec![0.25],
        classes: vec![0],
    };
    comp4::write_dir(
        dir.path(),
        "test",
        &classes(),
        &[("000001", &first), ("000002", &second)],
    )
    .unwrap();
    let cat = std::fs::read_to_string(dir.path().join("comp4_det_test_cat.txt")).unwrap();
    // 1-based: xmin = x1 + 1, xmax = x2.
    assert_eq!(cat, "000001 0.9 1 1 10 10\n000002 0.25 6 6 25 15\n");
    // Every class gets a file, empty if it has no detections.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("comp4_det_test_bird.txt")).unwrap(),
        ""
    );

    let mut ev = evaluator();
    let summary = comp4::read_dir(dir.path(), "test", &mut ev).unwrap();
    assert_eq!((summary.files, summary.detections), (3, 3));
    assert!(summary.missing_classes.is_empty());
    // The odd dog box survives the trip exactly.
    let dog = std::fs::read_to_string(dir.path().join("comp4_det_test_dog.txt")).unwrap();
    let fields: Vec<f64> = dog
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(fields[0] as f32, 0.123_456_79_f32);
    assert_eq!(
        comp4::model_box([fields[1], fields[2], fields[3], fields[4]]),
        [0.1, 0.7, 3.3, 9.9]
    );
    let report = ev.evaluate(VocMetric::Voc12, 0.5);
    assert_eq!(report.classes[0].ap, Some(1.0));
    assert_eq!(report.classes[0].detections, 2);
}

#[test]
fn a_missing_class_file_means_no_detections_for_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cat", "000001 0.9 1 1 10 10\n\n");
    // Files of another split or kind are not read.
    std::fs::write(dir.path().join("comp4_det_val_cat.txt"), "garbage").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "garbage").unwrap();
    let mut ev = evaluator();
    let summary = comp4::read_dir(dir.path(), "test", &mut ev).unwrap();
    assert_eq!(summary.missing_classes, vec!["dog", "bird"]);
    let report = ev.evaluate(VocMetric::Voc12, 0.5);
    // One of the two cats found, at precision 1.
    assert_eq!(report.classes[0].ap, Some(0.5));
}

fn read_error(files: &[(&str, &str)]) -> (Comp4Error, String) {
    let dir = tempfile::tempdir().unwrap();
    for (class, text) in files {
        write(dir.path(), class, text);
    }
    let err = comp4::read_dir(dir.path(), "test", &mut evaluator()).unwrap_err();
    let message = err.to_string();
    let dir_name = dir.path().display().to_string();
    (err, message.replace(&dir_name, "DIR"))
}

#[test]
fn bad_lines_name_their_file_and_line() {
    let (err, message) = read_error(&[("cat", "000001 0.9 1 1 10 10\n000002 0.5 1 1 10\n")]);
    assert!(err.is_bad_input());
    assert_eq!(
        message,
        "DIR/comp4_det_test_cat.txt:2: 5 fields where 6 were expected: \"<id> <score> <xmin> <ymin> <xmax> <ymax>\""
    );
    let (_, message) = read_error(&[("dog", "000001 NaN 1 1 10 10\n")]);
    assert_eq!(
        message,
        "DIR/comp4_det_test_dog.txt:1: the score is \"NaN\", not a finite number"
    );
    let (_, message) = read_error(&[("cat", "000001 0.9 1 1 10 10\n\n009999 0.5 1 1 10 10\n")]);
    assert_eq!(
        message,
        "DIR/comp4_det_test_cat.txt:3: image id \"009999\" is not in the \"test\" split"
    );
    let (_, message) = read_error(&[("cat", "000001 0.9 1 1 10 10 extra\n")]);
    assert!(
        message.starts_with("DIR/comp4_det_test_cat.txt:1: 7 fields"),
        "{message}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("comp4_det_test_cat.txt"),
        b"000001 0.9 1 1 10 \xff\n",
    )
    .unwrap();
    let err = comp4::read_dir(dir.path(), "test", &mut evaluator()).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("comp4_det_test_cat.txt:1: not UTF-8 text"),
        "{err}"
    );
    let long = format!("000001 0.9 1 1 10 {}\n", "1".repeat(5000));
    let (_, message) = read_error(&[("cat", &long)]);
    assert!(message.starts_with("DIR/comp4_det_test_cat.txt:1: longer than 4096 bytes"));
}

#[test]
fn unknown_class_files_and_unreadable_folders_are_refused() {
    let (err, message) = read_error(&[("cat", ""), ("dgo", "000001 0.9 1 1 10 10\n")]);
    assert!(err.is_bad_input());
    assert_eq!(
        message,
        "DIR/comp4_det_test_dgo.txt: \"dgo\" is not a class of this dataset (its classes: cat, dog, bird)"
    );
    let err =
        comp4::read_dir(Path::new("/nonexistent/comp4"), "test", &mut evaluator()).unwrap_err();
    assert!(err.is_bad_input());
    assert!(err.to_string().starts_with("/nonexistent/comp4: "), "{err}");
    // A FIFO in place of a class file is refused before it is read (no hang).
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("comp4_det_test_cat.txt");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc_mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let err = comp4::read_dir(dir.path(), "test", &mut evaluator()).unwrap_err();
    assert!(err.to_string().contains("is a FIFO (named pipe)"), "{err}");
}

extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
}

/// Seeded byte mutations and truncations of a valid file: reading must give detections or
/// an error naming the file, never a panic (`TRICKS_FUZZ_CASES` for more cases).
#[test]
fn mutated_files_are_read_or_refused_without_panicking() {
    let cases: u64 = std::env::var("TRICKS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let valid = b"000001 0.9 1 1 10 10\n000002 0.25 6.5 6 25 15e0\n000001 1e-3 2 2 3 3\n";
    let mut state = 0x5EED_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(comp4::file_name("test", "cat"));
    let (mut read, mut refused) = (0, 0);
    for _ in 0..cases {
        let mut bytes = valid.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            match next() % 4 {
                0 => bytes[at] = next() as u8,
                1 => bytes[at] = b"0123456789.-+eE \nnaif"[(next() % 21) as usize],
                2 => {
                    bytes.remove(at);
                }
                _ => bytes.truncate(at),
            }
            if bytes.is_empty() {
                bytes.push(b'\n');
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        match comp4::read_dir(dir.path(), "test", &mut evaluator()) {
            Ok(_) => read += 1,
            Err(e) => {
                assert!(e.to_string().contains("comp4_det_test_cat.txt"), "{e}");
                refused += 1;
            }
        }
    }
    assert!(read > 0 && refused > 0, "{read} read, {refused} refused");
}

#[test]
fn the_writer_refuses_what_the_reader_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let nan = ImageDetections {
        boxes: vec![[0.0, 0.0, f32::NAN, 10.0]],
        scores: vec![0.5],
        classes: vec![0],
    };
    let unequal = ImageDetections {
        boxes: vec![[0.0, 0.0, 1.0, 1.0]],
        scores: vec![],
        classes: vec![0],
    };
    for bad in [&nan, &unequal] {
        let err = comp4::write_dir(dir.path(), "test", &classes(), &[("000001", bad)]);
        assert_eq!(err.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    }
}
