//! Checks of the crate's shape.

/// Each module may import only modules of lower layers (the order in the crate doc): no import circles
/// and nothing below the command line knowing it.
#[test]
fn layering() {
    // Lowest first.
    let layers = ["control", "mesh", "tui_client", "demo", "cli"];
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (rank, layer) in layers.iter().enumerate() {
        let mut files = Vec::new();
        let dir = src.join(layer);
        if dir.is_dir() {
            collect(&dir, &mut files);
        } else {
            files.push(src.join(format!("{layer}.rs")));
        }
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read a source file");
            for higher in &layers[rank + 1..] {
                let needle = format!("crate::{higher}");
                assert!(
                    !text.contains(&needle),
                    "{} (layer {layer}) imports {needle}, a layer above it",
                    file.display()
                );
            }
        }
    }
}

fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
