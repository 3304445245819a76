use std::os::unix::fs::PermissionsExt;

use super::*;

fn file(dir: &Path, name: &str, mode: u32) {
    let p = dir.join(name);
    std::fs::write(&p, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn discovery_takes_the_executable_files_sorted_by_name() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "b-ext", 0o755);
    file(dir.path(), "a-ext", 0o700);
    file(dir.path(), "README", 0o644);
    std::fs::create_dir(dir.path().join("folder")).unwrap();
    let found = discover(&dir.path().display().to_string()).unwrap();
    let names: Vec<String> = found.iter().map(|p| name_of(p)).collect();
    assert_eq!(names, ["a-ext", "b-ext"]);
}

#[test]
fn more_than_ten_extensions_stop_start_up_with_the_count() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..11 {
        file(dir.path(), &format!("e{i:02}"), 0o755);
    }
    let err = discover(&dir.path().display().to_string()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("LAMBDA_EXTENSIONS_DIR") && text.contains("11 extensions"),
        "{text}"
    );
}

#[test]
fn off_means_none_and_a_missing_named_folder_is_refused() {
    assert!(discover("off").unwrap().is_empty());
    assert!(discover("OFF").unwrap().is_empty());
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope").display().to_string();
    assert!(discover(&missing).is_err());
}
