//! Random identifiers and secrets.

/// `bytes` random bytes as hex: session ids (16 bytes) and tokens (32) that
/// cannot be guessed or enumerated.
pub fn hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if getrandom::fill(&mut buf).is_err() {
        // No entropy source at all is a broken system. Ids stay unique (not
        // secret); tokens made from this would be guessable, so say so.
        log::error!("no source of randomness: session tokens are predictable");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (nanos >> ((i % 16) * 8)) as u8;
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_and_tokens_are_random_hex() {
        let a = super::hex(16);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, super::hex(16));
    }
}
