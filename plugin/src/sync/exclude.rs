//! GNU tar's `--exclude` as the host means it: a pattern matches a member when it matches the
//! member's path or any tail of it that starts at a component (`node_modules` excludes
//! `a/b/node_modules`), with `*` and `?` matching `/` too, and `[…]` classes.

/// A set of exclude patterns.
#[derive(Debug, Clone, Default)]
pub struct Excludes(Vec<String>);

impl Excludes {
    /// The patterns of a mapping.
    pub fn new(patterns: &[String]) -> Self {
        Self(patterns.to_vec())
    }

    /// Whether the member at `relative` (slash-separated, no leading `./`) is left out.
    pub fn excludes(&self, relative: &str) -> bool {
        let tails = std::iter::once(relative).chain(
            relative
                .match_indices('/')
                .map(|(index, _)| &relative[index + 1..]),
        );
        let tails: Vec<&str> = tails.collect();
        self.0.iter().any(|pattern| {
            tails
                .iter()
                .any(|tail| matches(pattern.as_bytes(), tail.as_bytes()))
        })
    }
}

/// fnmatch without `FNM_PATHNAME`: `*` any run, `?` any byte, `[…]` a class (`!`/`^` negates).
fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class(&pattern[p..], text[t]).map(|length| p + length),
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == text[t]).then_some(p + 2),
            Some(&literal) => (literal == text[t]).then_some(p + 1),
            None => None,
        };
        match (step, backtrack) {
            (Some(next), _) => {
                p = next;
                t += 1;
            }
            (None, Some((star, from))) => {
                p = star + 1;
                t = from + 1;
                backtrack = Some((star, from + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&byte| byte == b'*')
}

/// Matches `byte` against the class at the start of `pattern`; returns the class's length when
/// it matches. An unterminated `[` is a literal.
fn class(pattern: &[u8], byte: u8) -> Option<usize> {
    let mut index = 1;
    let negated = matches!(pattern.get(index), Some(b'!' | b'^'));
    if negated {
        index += 1;
    }
    let mut found = false;
    let mut first = true;
    while let Some(&current) = pattern.get(index) {
        if current == b']' && !first {
            return (found != negated).then_some(index + 1);
        }
        first = false;
        if pattern.get(index + 1) == Some(&b'-')
            && pattern.get(index + 2).is_some_and(|end| *end != b']')
        {
            let end = pattern[index + 2];
            found |= (current..=end).contains(&byte);
            index += 3;
        } else {
            found |= current == byte;
            index += 1;
        }
    }
    (byte == b'[').then_some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excludes(patterns: &[&str], path: &str) -> bool {
        let patterns: Vec<String> = patterns
            .iter()
            .map(|pattern| (*pattern).to_owned())
            .collect();
        Excludes::new(&patterns).excludes(path)
    }

    #[test]
    fn the_hosts_patterns_work_as_gnu_tar_applies_them() {
        let host = [
            "node_modules",
            "node_modules/*",
            "*/node_modules",
            "*/node_modules/*",
            ".git",
            "._*",
        ];
        for excluded in [
            "node_modules",
            "node_modules/a/b.js",
            "pkg/node_modules",
            "a/b/node_modules/c",
            ".git",
            "sub/.git",
            "._meta",
            "dir/._x",
        ] {
            assert!(excludes(&host, excluded), "{excluded}");
        }
        for kept in [
            "src/main.rs",
            "node_modules_extra",
            "my.git",
            "a/_x",
            "gitignore",
        ] {
            assert!(!excludes(&host, kept), "{kept}");
        }
    }

    #[test]
    fn wildcards_and_classes() {
        assert!(matches(b"*.log", b"a/b.log"), "star matches slashes");
        assert!(matches(b"?.txt", b"a.txt"));
        assert!(!matches(b"?.txt", b"ab.txt"));
        assert!(matches(b"[abc]x", b"bx"));
        assert!(matches(b"[a-c]x", b"cx"));
        assert!(!matches(b"[!a-c]x", b"cx"));
        assert!(matches(b"[]]", b"]"));
        assert!(matches(b"a[", b"a["), "an unterminated class is literal");
        assert!(matches(b"\\*", b"*"));
        assert!(!matches(b"\\*", b"x"));
        assert!(matches(b"**", b""));
        assert!(!matches(b"a*b", b"a/c"));
    }
}
