/// The `Content-Type` for a served path, by its extension. Used by build.rs
/// (through `include!`) for embedded assets and at run time for `--assets-dir`.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The entity tag of a file's bytes, quoted: its length and 64-bit FNV-1a
/// hash. Not cryptographic; it tells two versions of a page file apart.
/// Shared like `content_type`: build.rs tags embedded files, the server
/// tags `--assets-dir` files.
pub fn etag_of(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{:x}-{hash:016x}\"", bytes.len())
}
