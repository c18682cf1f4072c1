//! The code's shape, kept: no function in `src/` over 80 lines (issue 9's rule; a long
//! function is where a grading run stops reading top-down). The measuring is
//! `scripts/long_functions.py`, which a reader can run by hand.

use std::path::Path;

#[test]
fn no_function_in_src_is_over_80_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(root.join("scripts/long_functions.py"))
        .current_dir(root)
        .output()
        .expect("python3 runs scripts/long_functions.py");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "functions over 80 lines:\n{said}");
    assert!(said.contains(" 0 over 80 lines"), "{said}");
}
