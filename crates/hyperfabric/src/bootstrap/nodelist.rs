//! Slurm's compressed host lists: `node[01-03,07],gpu7` -> node01 node02 node03 node07 gpu7.

use super::BootstrapError;

/// Most host names one list may expand to (a typo like `n[0-999999999]` must not allocate
/// without bound).
pub const MAX_HOSTS: usize = 65_536;

/// Expands `list` (the value of `var`, named in errors) into host names, in order.
pub fn expand(var: &str, list: &str) -> Result<Vec<String>, BootstrapError> {
    let bad = |reason: String| BootstrapError::BadValue {
        var: var.to_owned(),
        value: list.to_owned(),
        reason,
    };
    let mut hosts = Vec::new();
    for item in split_top(list).map_err(&bad)? {
        if item.is_empty() {
            return Err(bad("an empty host name".into()));
        }
        expand_item(item, &mut hosts).map_err(&bad)?;
    }
    if hosts.is_empty() {
        return Err(bad("no host names".into()));
    }
    Ok(hosts)
}

/// Splits at commas outside brackets.
fn split_top(list: &str) -> Result<Vec<&str>, String> {
    let (mut depth, mut start, mut out) = (0u32, 0usize, Vec::new());
    for (i, c) in list.char_indices() {
        match c {
            '[' if depth == 0 => depth = 1,
            '[' => return Err("nested `[`".into()),
            ']' if depth == 1 => depth = 0,
            ']' => return Err("`]` without `[`".into()),
            ',' if depth == 0 => {
                out.push(list[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("`[` without `]`".into());
    }
    out.push(list[start..].trim());
    Ok(out)
}

/// One item: `prefix[ranges]suffix` (several bracket groups multiply) or a plain name.
fn expand_item(item: &str, out: &mut Vec<String>) -> Result<(), String> {
    let Some(open) = item.find('[') else {
        push(out, item.to_owned())?;
        return Ok(());
    };
    let close = item[open..]
        .find(']')
        .map(|c| open + c)
        .ok_or("`[` without `]`")?;
    let (prefix, ranges, rest) = (&item[..open], &item[open + 1..close], &item[close + 1..]);
    for range in ranges.split(',') {
        let range = range.trim();
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let width = lo.len();
        let parse = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("`{range}` is not a number or a range of numbers"))
        };
        let (a, b) = (parse(lo)?, parse(hi)?);
        if a > b {
            return Err(format!("range `{range}` runs backwards"));
        }
        if b - a >= MAX_HOSTS as u64 {
            return Err(format!("range `{range}` has more than {MAX_HOSTS} hosts"));
        }
        for n in a..=b {
            let head = format!("{prefix}{n:0width$}");
            // A second bracket group expands against each name of the first.
            let mut tails = Vec::new();
            expand_item(&format!("x{rest}"), &mut tails)?;
            for t in tails {
                push(out, format!("{head}{}", &t[1..]))?;
            }
        }
    }
    Ok(())
}

fn push(out: &mut Vec<String>, host: String) -> Result<(), String> {
    if out.len() >= MAX_HOSTS {
        return Err(format!("more than {MAX_HOSTS} hosts"));
    }
    out.push(host);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Vec<String> {
        expand("SLURM_JOB_NODELIST", s).unwrap()
    }

    #[test]
    fn expands_ranges_lists_and_padding() {
        assert_eq!(
            ok("node[01-03,07]"),
            ["node01", "node02", "node03", "node07"]
        );
        assert_eq!(ok("a,b"), ["a", "b"]);
        assert_eq!(ok("gpu[8-10],cpu1"), ["gpu8", "gpu9", "gpu10", "cpu1"]);
        assert_eq!(ok("r[1-2]n[1-2]"), ["r1n1", "r1n2", "r2n1", "r2n2"]);
        assert_eq!(ok("n[007]-ib"), ["n007-ib"]);
    }

    #[test]
    fn bad_lists_name_the_variable() {
        for bad in [
            "node[01-",
            "node]1",
            "n[3-1]",
            "n[a-b]",
            "",
            "a,,b",
            "n[0-99999999]",
            "n[[1]]",
        ] {
            let e = expand("SLURM_JOB_NODELIST", bad).unwrap_err();
            assert!(e.to_string().contains("SLURM_JOB_NODELIST"), "{bad}: {e}");
        }
    }
}
