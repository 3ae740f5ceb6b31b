//! Small pieces of wording shared by every report.

/// "s" unless `n` is 1: `format!("{n} write call{}", plural(n))`.
pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
