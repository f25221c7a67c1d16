//! The page's files: embedded at build time (see build.rs), or read from
//! `--assets-dir` while working on the page.

use std::path::{Component, Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/assets.rs"));
include!("content_type.rs");

/// A file to serve.
pub struct Asset {
    pub content_type: &'static str,
    pub body: std::borrow::Cow<'static, [u8]>,
}

/// Finds the file for a URL path (`/` is `/index.html`). With `dir`, files
/// under it win over embedded ones, so xterm.js still comes from the binary.
pub fn lookup(path: &str, dir: Option<&Path>) -> Option<Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    if let Some(dir) = dir {
        if let Some(file) = safe_join(dir, path) {
            if let Ok(bytes) = std::fs::read(&file) {
                return Some(Asset {
                    content_type: content_type(path),
                    body: bytes.into(),
                });
            }
        }
    }
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, ct, bytes)| Asset {
            content_type: ct,
            body: (*bytes).into(),
        })
}

/// Joins a URL path onto `dir`, refusing anything that could climb out of it.
fn safe_join(dir: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = Path::new(url_path.trim_start_matches('/'));
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| dir.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_page_and_vendor_files_exist() {
        assert!(lookup("/", None)
            .unwrap()
            .content_type
            .starts_with("text/html"));
        assert!(lookup("/vendor/xterm.mjs", None).unwrap().body.len() > 10_000);
        assert!(lookup("/nope", None).is_none());
    }

    #[test]
    fn no_path_traversal() {
        assert!(safe_join(Path::new("/srv"), "/../etc/passwd").is_none());
        assert!(safe_join(Path::new("/srv"), "/a/./b").is_some());
        assert_eq!(
            safe_join(Path::new("/srv"), "/a/b.js").unwrap(),
            PathBuf::from("/srv/a/b.js")
        );
    }
}
