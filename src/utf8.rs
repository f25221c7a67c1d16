//! Incremental UTF-8 decoding for the terminado protocol.
//!
//! A PTY read ends wherever the kernel's buffer happened to end, often in the
//! middle of a multi-byte character. Decoding each read on its own (as the
//! project this one descends from did with `from_utf8_lossy`) turns every such
//! split into U+FFFD, which TUIs full of box-drawing and braille characters
//! hit constantly. This decoder keeps an incomplete trailing sequence (at
//! most three bytes) for the next read, and replaces only bytes that are
//! invalid whatever follows them.

/// Decoder state: the bytes of a character whose end has not arrived yet.
#[derive(Default, Debug)]
pub struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// Decodes `input` after whatever was pending, appending text to `out`.
    pub fn decode_into(&mut self, input: &[u8], out: &mut String) {
        if self.pending.is_empty() {
            self.decode_fresh(input, out);
            return;
        }
        // Complete the pending character with as few bytes as it needs, then
        // continue on the rest of `input` without copying it.
        let mut joined = std::mem::take(&mut self.pending);
        let take = input.len().min(4 - joined.len().min(4));
        joined.extend_from_slice(&input[..take]);
        match std::str::from_utf8(&joined) {
            Ok(s) => {
                out.push_str(s);
                self.decode_fresh(&input[take..], out);
            }
            Err(e) if e.valid_up_to() > 0 => {
                // The pending character completed within `take` bytes; the rest
                // of those bytes are re-decoded from `input` itself.
                let used = e.valid_up_to();
                out.push_str(std::str::from_utf8(&joined[..used]).unwrap_or_default());
                let consumed_from_input = used - (joined.len() - take);
                self.decode_fresh(&input[consumed_from_input..], out);
            }
            Err(e) => match e.error_len() {
                None => {
                    // Still incomplete: the input was shorter than the character.
                    self.pending = joined;
                }
                Some(bad) => {
                    out.push(char::REPLACEMENT_CHARACTER);
                    let pending_len = joined.len() - take;
                    if bad >= pending_len {
                        self.decode_fresh(&input[bad - pending_len..], out);
                    } else {
                        // The invalid run ended inside the old pending bytes;
                        // what followed it there is decoded again.
                        let mut rest = joined[bad..pending_len].to_vec();
                        rest.extend_from_slice(input);
                        self.decode_fresh(&rest, out);
                    }
                }
            },
        }
    }

    /// Decodes a whole chunk, as a convenience for callers and tests.
    pub fn decode(&mut self, input: &[u8]) -> String {
        let mut out = String::with_capacity(input.len());
        self.decode_into(input, &mut out);
        out
    }

    /// Whatever is still pending when the stream ends is invalid.
    pub fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            String::new()
        } else {
            self.pending.clear();
            char::REPLACEMENT_CHARACTER.to_string()
        }
    }

    fn decode_fresh(&mut self, mut input: &[u8], out: &mut String) {
        loop {
            match std::str::from_utf8(input) {
                Ok(s) => {
                    out.push_str(s);
                    return;
                }
                Err(e) => {
                    let (valid, after) = input.split_at(e.valid_up_to());
                    // Safety of the unwrap_or_default: `valid` is exactly the
                    // prefix from_utf8 just validated.
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        None => {
                            self.pending.extend_from_slice(after);
                            return;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            input = &after[bad..];
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way of cutting `bytes` in two must decode like the whole.
    fn all_splits_agree(bytes: &[u8]) {
        let whole = String::from_utf8_lossy(bytes).into_owned();
        for cut in 0..=bytes.len() {
            let mut d = Utf8Decoder::default();
            let mut got = d.decode(&bytes[..cut]);
            got.push_str(&d.decode(&bytes[cut..]));
            got.push_str(&d.finish());
            assert_eq!(got, whole, "cut at {cut} of {bytes:?}");
        }
    }

    #[test]
    fn multibyte_split_anywhere_is_preserved() {
        all_splits_agree("héllo ─│┌┐ 日本語 🦀⣿ done".as_bytes());
    }

    #[test]
    fn invalid_bytes_become_replacement_like_lossy() {
        all_splits_agree(b"ok \xff\xfe mid \xe2\x82 end");
        all_splits_agree(b"\xf0\x9f\x98");
        all_splits_agree(b"\xe2\x28\xa1 x");
        all_splits_agree(b"\xc3");
    }

    #[test]
    fn byte_at_a_time() {
        let text = "┌─🦀─┐ ⣿⣿ 日本";
        let mut d = Utf8Decoder::default();
        let mut got = String::new();
        for b in text.as_bytes() {
            d.decode_into(std::slice::from_ref(b), &mut got);
        }
        assert_eq!(got, text);
    }
}
