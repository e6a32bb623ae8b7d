//! The line discipline shared by the password and SCRAM credential files, which is
//! Mosquitto's `pwfile__parse` (src/password_file.c in 2.0): `#` in the first column starts
//! a comment, a line without `:` is skipped, the user name is the text before the first
//! `:` and the secret the text up to the next one, both trimmed of white space (so CRLF
//! endings and trailing blanks are harmless).

/// One line of a `user:secret` file, as Mosquitto reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// A comment, a blank line or a line without `:`: Mosquitto skips these silently.
    Skip,
    /// A user name and its secret (the secret is empty when nothing follows the `:`).
    Entry { user: &'a str, secret: &'a str },
}

/// Longest user name or secret Mosquitto accepts, in bytes (an MQTT string's length).
pub(crate) const FIELD_LEN_MAX_BYTES: usize = 65_535;

/// Splits one line (without its `\n`) the way Mosquitto's `strtok_r(buf, ":")` does:
/// empty fields are skipped over, so `::alice:hash` names `alice`.
pub(crate) fn split(line: &str) -> Line<'_> {
    if line.starts_with('#') || !line.contains(':') {
        return Line::Skip;
    }
    let mut fields = line.split(':').filter(|field| !field.is_empty());
    let user = fields.next().map_or("", str::trim);
    let secret = fields.next().map_or("", str::trim);
    Line::Entry { user, secret }
}

/// The lines of a file with their 1-based numbers; a line that is not UTF-8 is an error
/// naming its number rather than a reason to refuse the whole file unread.
pub(crate) fn numbered(text: &[u8]) -> impl Iterator<Item = (usize, Result<&str, std::str::Utf8Error>)> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let lines = if text.is_empty() { None } else { Some(text.split(|b| *b == b'\n')) };
    lines.into_iter().flatten().enumerate().map(|(i, line)| (i + 1, std::str::from_utf8(line)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_as_mosquitto_strtok_does() {
        assert_eq!(split("alice:$7$x"), Line::Entry { user: "alice", secret: "$7$x" });
        assert_eq!(split(" alice : hash \r"), Line::Entry { user: "alice", secret: "hash" });
        assert_eq!(split("::alice:hash:extra"), Line::Entry { user: "alice", secret: "hash" });
        assert_eq!(split("alice:"), Line::Entry { user: "alice", secret: "" });
        assert_eq!(split("# alice:hash"), Line::Skip);
        assert_eq!(split("no colon here"), Line::Skip);
        assert_eq!(split(""), Line::Skip);
    }

    #[test]
    fn numbers_lines_from_one_and_ignores_the_final_newline() {
        let lines: Vec<_> = numbered(b"a\n\nb\n").map(|(n, l)| (n, l.unwrap())).collect();
        assert_eq!(lines, [(1, "a"), (2, ""), (3, "b")]);
        assert_eq!(numbered(b"").count(), 0);
        let bad: Vec<_> = numbered(b"ok\n\xff\n").map(|(n, l)| (n, l.is_ok())).collect();
        assert_eq!(bad, [(1, true), (2, false)]);
    }
}
